from django.urls import path

from . import views, views_case, views_dashboard, views_queue

urlpatterns = [
    path("", views.home, name="home"),
    # The collector's workspace (cases/views_queue.py, cases/views_case.py).
    path("queue/", views_queue.queue, name="queue"),
    path("cases/<int:case_id>/", views_case.case_detail, name="case-detail"),
    path("cases/<int:case_id>/contacts/", views_case.contact_create, name="case-contact"),
    path("cases/<int:case_id>/promises/", views_case.promise_create_view, name="case-promise"),
    path("cases/<int:case_id>/plans/", views_case.plan_create, name="case-plan"),
    path("cases/<int:case_id>/notes/", views_case.note_create, name="case-note"),
    path("cases/<int:case_id>/holds/", views_case.hold_create, name="case-hold"),
    path("cases/<int:case_id>/holds/<int:hold_id>/release/", views_case.hold_release_view, name="case-hold-release"),
    path("cases/<int:case_id>/reveal/", views_case.reveal, name="case-reveal"),
    # Supervisor pages (cases/views_dashboard.py).
    path("supervisor/dashboard/", views_dashboard.dashboard, name="dashboard"),
    path("supervisor/dashboard/<slug:key>.csv", views_dashboard.dashboard_csv, name="dashboard_csv"),
    path("supervisor/cases/", views_dashboard.team_case_list, name="team_cases"),
    path("supervisor/approvals/", views_dashboard.approval_list, name="approvals"),
    path("supervisor/approvals/<int:case_id>/", views_dashboard.approval_decide, name="approval_decide"),
]
