from django.urls import path

from . import views, views_dashboard

urlpatterns = [
    path("", views.home, name="home"),
    # Supervisor pages (cases/views_dashboard.py).
    path("supervisor/dashboard/", views_dashboard.dashboard, name="dashboard"),
    path("supervisor/dashboard/<slug:key>.csv", views_dashboard.dashboard_csv, name="dashboard_csv"),
    path("supervisor/cases/", views_dashboard.team_case_list, name="team_cases"),
    path("supervisor/approvals/", views_dashboard.approval_list, name="approvals"),
    path("supervisor/approvals/<int:case_id>/", views_dashboard.approval_decide, name="approval_decide"),
]
