"""Portal pages of the notifications app (the Twilio webhooks are in notifications/urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("cases/<int:case_id>/send/", views.case_send, name="case-send-template"),
]
