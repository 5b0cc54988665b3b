from django.contrib import admin

from .models import CompliancePolicy


@admin.register(CompliancePolicy)
class CompliancePolicyAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "window_start",
        "window_end",
        "sms_per_day",
        "sms_per_week",
        "updated_at",
    )

    def has_add_permission(self, request) -> bool:
        # One policy for the whole portal; the migration creates it.
        return not CompliancePolicy.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
