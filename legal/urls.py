from django.urls import path

from . import views

app_name = "legal"

urlpatterns = [
    path("matters/", views.matter_list, name="matters"),
    path("matters/<int:matter_id>/", views.matter_detail, name="matter"),
    path("matters/<int:matter_id>/<slug:step>/", views.matter_step, name="matter_step"),
    path("hearings/", views.hearing_list, name="hearings"),
    path("agencies/", views.agency_performance_page, name="agencies"),
    path("placements/", views.placement_list, name="placements"),
    path("placements/<int:placement_id>/recall/", views.placement_recall_view, name="placement_recall"),
    path("cases/<int:case_id>/place/", views.case_place_view, name="case_place"),
    path("documents/<int:document_id>/download/", views.document_download, name="document_download"),
]
