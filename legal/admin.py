"""Admin for agencies and their users; placements, matters and documents are read-mostly
here: their changes go through the services (events, permissions), on the legal pages."""

from django.contrib import admin

from .models import Agency, AgencyMember, Hearing, LegalDocument, LegalMatter, Placement


class AgencyMemberInline(admin.TabularInline):
    model = AgencyMember
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_name", "commission_percent", "capacity", "active")
    list_filter = ("active",)
    search_fields = ("name", "contact_name")
    inlines = [AgencyMemberInline]


@admin.register(AgencyMember)
class AgencyMemberAdmin(admin.ModelAdmin):
    list_display = ("user", "agency")
    list_select_related = ("user", "agency")
    raw_id_fields = ("user",)
    list_filter = ("agency",)
    search_fields = ("user__username", "agency__name")


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    list_display = ("case", "agency", "placed_at", "balance_placed", "recalled_at", "recall_reason", "amount_recovered")
    list_select_related = ("case", "agency")
    list_filter = ("agency", "recall_reason")
    date_hierarchy = "placed_at"
    raw_id_fields = ("case", "placed_by")
    # Placing and recalling write case events and settle recovery: the placements page does it.
    readonly_fields = [f.name for f in Placement._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class HearingInline(admin.TabularInline):
    model = Hearing
    extra = 0
    readonly_fields = ("at", "location", "note")
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class LegalDocumentInline(admin.TabularInline):
    model = LegalDocument
    extra = 0
    fields = ("kind", "title", "sha256", "language", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LegalMatter)
class LegalMatterAdmin(admin.ModelAdmin):
    list_display = ("pk", "case", "status", "court", "court_case_number", "filed_on", "opened_at")
    list_select_related = ("case",)
    list_filter = ("status",)
    search_fields = ("court_case_number", "case__loan__external_id", "case__loan__borrower__name")
    raw_id_fields = ("case", "opened_by")
    inlines = [HearingInline, LegalDocumentInline]
    # Status moves are services with role checks and events: only descriptive fields change here.
    readonly_fields = (
        "case",
        "status",
        "opened_at",
        "opened_by",
        "status_changed_at",
        "closed_at",
        "amount_claimed",
        "judgment_amount",
        "judgment_on",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
