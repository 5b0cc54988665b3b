from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def compliance_case_policy():
    """The call caps and promise grace days of the admin-edited CompliancePolicy, in the shape
    ``cases`` understands (``cases`` may not import this app, so it asks through a provider)."""
    from cases.policy import DEFAULT_CASE_POLICY, CasePolicy

    from .models import CompliancePolicy

    # A read, not CompliancePolicy.current(): asking for limits must not write a row.
    row = (
        CompliancePolicy.objects.filter(pk=1)
        .values("promise_grace_days", "call_attempts_per_week", "connected_calls_per_day")
        .first()
    )
    return CasePolicy(**row) if row else DEFAULT_CASE_POLICY


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        # Register the sms and email stage actions and the resolve listener with cases.
        from cases.policy import register_case_policy_provider

        from . import dashboard, handlers  # noqa: F401

        # The supervisor dashboard's message delivery panel.
        dashboard.register()

        # The case-work services (call caps, promise pauses) read the policy through this.
        register_case_policy_provider(compliance_case_policy)

        # The case page's "send an approved template" panel.
        from cases.views_case import register_case_panel

        from .views import case_send_panel

        register_case_panel("send_template", case_send_panel)
