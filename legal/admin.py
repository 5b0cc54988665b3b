from django.contrib import admin

from .models import Agency


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_name", "commission_percent", "capacity", "active")
    list_filter = ("active",)
    search_fields = ("name", "contact_name")
