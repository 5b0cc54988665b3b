"""Django admin for the collection book, built for daily use on a million loans.

Money and case state change only through the services, which write the timeline in the
same transaction. So payments, allocations, events, import runs and the work recorded on
cases are view-only here; a case's only editable field is its collector, and that edit goes
through the assignment service. Stage rules are where admins change the collection path.

Every changelist names its joins (`list_select_related`) so the query count does not grow
with the rows, and every editable foreign key to a big table is a raw id: a <select> of a
million loans would take longer to render than to read. Big tables filter by date with a
list filter, not `date_hierarchy`: the hierarchy runs MIN/MAX and SELECT DISTINCT over the
whole table on every page, while the date filter costs nothing until it is used.
"""

from django import forms
from django.contrib import admin
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections, transaction
from django.forms.models import BaseModelFormSet
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from accounts.models import Role, User
from cases.actions import registered_actions
from cases.models import (
    Borrower,
    Case,
    CaseEvent,
    Contact,
    ContactAttempt,
    Hold,
    ImportRun,
    Installment,
    Loan,
    Note,
    Payment,
    PaymentAllocation,
    PaymentPlan,
    PlanInstallment,
    PromiseToPay,
    Stage,
    SweepRun,
)
from cases.models.audit import BorrowerView
from cases.models.stages import threshold_problem
from cases.services.assignment import ASSIGN_PERMISSION, active_collectors, cases_reassign

# Below this many rows (by the planner's estimate) an exact COUNT(*) is cheap enough.
ESTIMATE_ABOVE = 100_000
CURRENCY_CACHE_KEY = "cases.admin.loan_currencies"


def verbose(model, field_name: str):
    return model._meta.get_field(field_name).verbose_name


# --- Shared pieces ----------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """Pages an unfiltered big table on PostgreSQL's row estimate instead of COUNT(*).

    `show_full_result_count = False` only drops the second count; the paginator's own
    COUNT(*) still reads every row of an unfiltered million-row table on each page.
    Filtered lists, small tables and tables never analysed (reltuples -1) are counted exactly.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
                )
                row = cursor.fetchone()
            if row and row[0] >= ESTIMATE_ABOVE:
                return row[0]
        return super().count


class BigTableAdmin(admin.ModelAdmin):
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    search_help_text = _(
        "External ids and phone numbers (E.164, e.g. +8613812345678) match exactly; names match in part."
    )


class ViewOnlyMixin:
    """Rows written by services that keep money and the timeline consistent: shown, never edited here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ViewOnlyInline(ViewOnlyMixin, admin.TabularInline):
    extra = 0
    # Foreign keys the rows display; joined so each row does not fetch its own.
    related: tuple[str, ...] = ()

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset.select_related(*self.related) if self.related else queryset

    def get_readonly_fields(self, request, obj=None):
        # Every column is shown, none is a form field (some, like recorded_at, cannot be).
        return self.fields


def related_column(path: str, description, *, link: bool = False):
    """A changelist column for `path` (e.g. "loan__borrower__name"), optionally linked to its admin page.

    Django would label a related field by its own verbose name ("name"); the column says whose.
    """
    attrs = path.split("__")

    def show(_model_admin, obj):
        value = obj
        for attr in attrs:
            value = getattr(value, attr)
            if value is None:
                return None
        if link:
            meta = value._meta
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[value.pk])
            return format_html('<a href="{}">{}</a>', url, value)
        return value

    return admin.display(description=description, ordering=path)(show)


def loan_currencies() -> list[str]:
    # SELECT DISTINCT over every loan is a full scan; the set of currencies changes rarely.
    return cache.get_or_set(
        CURRENCY_CACHE_KEY, lambda: sorted(Loan.objects.values_list("currency", flat=True).distinct()), timeout=600
    )


class CurrencyFilter(admin.SimpleListFilter):
    title = verbose(Loan, "currency")
    parameter_name = "currency"
    loan_path = "currency"

    def lookups(self, request, model_admin):
        return [(code, code) for code in loan_currencies()]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.loan_path: self.value()}) if self.value() else queryset


class LoanCurrencyFilter(CurrencyFilter):
    loan_path = "loan__currency"


class CollectorFilter(admin.SimpleListFilter):
    """Lists the collectors (a few dozen users), not every user; Django's related-only
    filter would instead scan every case for the distinct collectors."""

    title = verbose(Case, "assigned_to")
    parameter_name = "collector"
    UNASSIGNED = "none"

    def lookups(self, request, model_admin):
        collectors = User.objects.filter(groups__name=Role.COLLECTOR).order_by("username")
        return [(self.UNASSIGNED, _("Unassigned")), *((str(u.pk), u.get_username()) for u in collectors)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.UNASSIGNED:
            return queryset.filter(assigned_to__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assigned_to_id=int(value))
        return queryset


# --- Stage rules ------------------------------------------------------------------------


def stage_in_use(stage: Stage) -> bool:
    return Case.objects.filter(stage=stage).exists() or Case.objects.filter(pending_stage=stage).exists()


def lock_stage_rules() -> None:
    # The threshold rule spans all rows: two admins saving at once would each check the set
    # as they found it and together could store an unordered one. The rules are few, so
    # every write takes them all first (the sweep's plain reads are not blocked).
    list(Stage.objects.select_for_update().values_list("pk", flat=True))


class StageListForm(forms.ModelForm):
    """One row of the stage changelist."""

    def _post_clean(self):
        # Stage.clean compares this row with the others as stored, but here several rows
        # change in one save (raising two thresholds past each other's old values is valid).
        # StageListFormSet.clean checks the whole edited set instead; entry_actions, the
        # other thing Stage.clean checks, is not editable in the list.
        self.instance.clean = lambda: None
        try:
            super()._post_clean()
        finally:
            del self.instance.clean


class StageListFormSet(BaseModelFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        edited = {form.instance.pk: form.instance for form in self.forms}
        rules = [(s.order, s.entry_dpd, s.code) for s in edited.values() if s.active]
        # Rows not on this page (a filter or search) keep their stored values.
        rules += Stage.objects.active().exclude(pk__in=list(edited)).values_list("order", "entry_dpd", "code")
        problem = threshold_problem(rules)
        if problem:
            raise ValidationError(problem)


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = (
        "order",
        "code",
        "name_en",
        "name_zh_hans",
        "entry_dpd",
        "requires_approval",
        "entry_actions",
        "repeat_interval_days",
        "active",
    )
    list_display_links = ("order", "code")
    list_editable = ("entry_dpd", "requires_approval", "repeat_interval_days", "active")
    list_filter = ("active", "requires_approval")
    list_select_related = ()
    search_fields = ("code", "name_en", "name_zh_hans")
    ordering = ("order",)
    fields = (
        "order",
        "code",
        "name_en",
        "name_zh_hans",
        "entry_dpd",
        "requires_approval",
        "entry_actions",
        "unhandled_actions",
        "repeat_interval_days",
        "active",
    )
    readonly_fields = ("unhandled_actions", "deleting")

    def get_fields(self, request, obj=None):
        return (*self.fields, "deleting") if obj is not None else self.fields

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in ("entry_dpd", "repeat_interval_days"):
            # The database refuses 0 (check constraints); the form says so in words.
            kwargs.setdefault("min_value", 1)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=StageListForm, **kwargs)

    def get_changelist_formset(self, request, **kwargs):
        return super().get_changelist_formset(request, formset=StageListFormSet, **kwargs)

    def changelist_view(self, request, extra_context=None):
        if request.method != "POST":
            return super().changelist_view(request, extra_context)
        with transaction.atomic():
            lock_stage_rules()
            return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        with transaction.atomic():
            lock_stage_rules()
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Bulk delete would first list every protected case of a stage in use (perhaps a
        # million) only to refuse; a stage is retired by clearing "active".
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and stage_in_use(obj):
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("deleting"))
    def deleting(self, obj: Stage) -> str:
        if stage_in_use(obj):
            return _("Cases are in this stage, so it cannot be deleted. Clear “active” to retire it.")
        return _("No case is in this stage; it can be deleted.")

    @admin.display(description=_("actions without a handler"))
    def unhandled_actions(self, obj: Stage) -> str:
        # A misspelt action is not an error for the sweep (it logs and skips it), so the
        # page shows which names nothing will carry out.
        known = registered_actions()
        unknown = [a for a in (obj.entry_actions or []) if isinstance(a, str) and a not in known]
        return ", ".join(unknown) or _("none")


# --- Borrowers and loans ----------------------------------------------------------------


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    fields = ("name", "relationship", "phone", "email", "is_emergency", "note")


class BorrowerLoanInline(ViewOnlyInline):
    model = Loan
    fields = ("external_id", "principal", "currency", "disbursed_on", "product")
    show_change_link = True


@admin.register(Borrower)
class BorrowerAdmin(BigTableAdmin):
    list_display = (
        "external_id",
        "name",
        "phone_masked",
        "national_id_masked",
        "language",
        "timezone",
        "sms_opt_out",
        "created_at",
    )
    list_select_related = ()
    list_filter = ("language", "sms_opt_out", "email_opt_out", "consent_sms", "consent_email")
    search_fields = ("external_id__exact", "phone__exact", "name")
    fieldsets = (
        (None, {"fields": ("external_id", "name", "phone", "email", "language", "timezone", "national_id")}),
        (
            _("Consent and opt-outs"),
            {"fields": ("consent_sms", "consent_email", "sms_opt_out", "sms_opt_out_at", "email_opt_out")},
        ),
        (_("Record"), {"fields": ("import_run", "created_at", "updated_at")}),
    )
    # An SMS opt-out is the borrower's own STOP (or START) by text; clearing it here would
    # message someone who asked not to be messaged.
    readonly_fields = ("sms_opt_out", "sms_opt_out_at", "import_run", "created_at", "updated_at")
    inlines = (ContactInline, BorrowerLoanInline)

    @admin.display(description=verbose(Borrower, "phone"))
    def phone_masked(self, obj: Borrower) -> str:
        return obj.masked_phone

    @admin.display(description=verbose(Borrower, "national_id"))
    def national_id_masked(self, obj: Borrower) -> str:
        return obj.masked_national_id


class InstallmentInline(ViewOnlyInline):
    # The schedule comes from the lender (API, import_loans) and paid amounts from payment
    # allocation; editing either here would change what is owed with no case re-evaluated.
    model = Installment
    fields = ("sequence", "due_date", "amount", "paid_amount", "remaining")

    @admin.display(description=_("remaining"))
    def remaining(self, obj: Installment):
        return obj.remaining


class LoanPaymentInline(ViewOnlyInline):
    model = Payment
    fields = ("external_id", "amount", "paid_at", "unallocated", "recorded_at")
    ordering = ("-paid_at",)
    show_change_link = True


@admin.register(Loan)
class LoanAdmin(BigTableAdmin):
    list_display = ("external_id", "borrower_link", "principal", "currency", "disbursed_on", "product", "created_at")
    list_select_related = ("borrower",)
    list_filter = (CurrencyFilter, "disbursed_on")
    search_fields = ("external_id__exact", "borrower__external_id__exact", "borrower__phone__exact", "borrower__name")
    raw_id_fields = ("borrower",)
    fields = ("external_id", "borrower", "principal", "currency", "disbursed_on", "product", "import_run", "created_at")
    readonly_fields = ("external_id", "borrower", "principal", "currency", "disbursed_on", "import_run", "created_at")
    inlines = (InstallmentInline, LoanPaymentInline)

    borrower_link = related_column("borrower", Borrower._meta.verbose_name, link=True)

    def has_add_permission(self, request) -> bool:
        # Loans come in through the API and import_loans, which validate the schedule.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # payments and cases point at it; its history stays


class AllocationInline(ViewOnlyInline):
    model = PaymentAllocation
    fields = ("installment", "amount")
    related = ("installment",)


@admin.register(Payment)
class PaymentAdmin(ViewOnlyMixin, BigTableAdmin):
    list_display = (
        "external_id",
        "loan_link",
        "borrower_name",
        "amount",
        "currency",
        "paid_at",
        "unallocated",
        "recorded_at",
    )
    list_select_related = ("loan__borrower",)
    list_filter = (LoanCurrencyFilter, "paid_at")
    search_fields = (
        "external_id__exact",
        "loan__external_id__exact",
        "loan__borrower__external_id__exact",
        "loan__borrower__phone__exact",
        "loan__borrower__name",
    )
    raw_id_fields = ("loan",)
    inlines = (AllocationInline,)

    loan_link = related_column("loan", Loan._meta.verbose_name, link=True)
    borrower_name = related_column("loan__borrower__name", Borrower._meta.verbose_name)
    currency = related_column("loan__currency", verbose(Loan, "currency"))


@admin.register(PaymentAllocation)
class PaymentAllocationAdmin(ViewOnlyMixin, BigTableAdmin):
    list_display = ("payment", "installment", "amount")
    list_select_related = ("payment", "installment")
    search_fields = ("payment__external_id__exact", "installment__loan__external_id__exact")
    raw_id_fields = ("payment", "installment")


@admin.register(ImportRun)
class ImportRunAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("file_name", "started_at", "finished_at", "rows", "loans", "borrowers", "created_by")
    list_select_related = ("created_by",)
    search_fields = ("file_name", "sha256__exact")
    date_hierarchy = "started_at"
    raw_id_fields = ("created_by",)


# --- Cases ------------------------------------------------------------------------------

CASE_SEARCH = (
    "case__loan__external_id__exact",
    "case__loan__borrower__external_id__exact",
    "case__loan__borrower__phone__exact",
    "case__loan__borrower__name",
)


class CaseEventInline(ViewOnlyInline):
    # Append-only: the model and a database trigger refuse changes; the admin offers none.
    model = CaseEvent
    verbose_name_plural = _("timeline")
    fields = ("at", "kind", "actor", "detail")
    ordering = ("-at", "-id")  # the latest is what a reader looks for first
    related = ("actor",)


class HoldInline(ViewOnlyInline):
    model = Hold
    fields = ("reason", "note", "starts_at", "ends_on", "released_at", "placed_by", "released_by")
    related = ("placed_by", "released_by")


class PromiseInline(ViewOnlyInline):
    model = PromiseToPay
    fields = ("amount", "due_date", "status", "created_at", "created_by", "settled_at")
    related = ("created_by",)


class PaymentPlanInline(ViewOnlyInline):
    model = PaymentPlan
    fields = ("status", "total_amount", "waived_amount", "created_at", "created_by", "approved_by", "settled_at")
    related = ("created_by", "approved_by")
    show_change_link = True


class ContactAttemptInline(ViewOnlyInline):
    model = ContactAttempt
    fields = ("attempted_at", "channel", "outcome", "connected", "collector", "note")
    ordering = ("-attempted_at",)
    related = ("collector",)


class NoteInline(ViewOnlyInline):
    model = Note
    fields = ("created_at", "author", "body")
    related = ("author",)


class CaseAdminForm(forms.ModelForm):
    def clean_assigned_to(self):
        collector = self.cleaned_data.get("assigned_to")
        if "assigned_to" not in self.changed_data:
            return collector
        if not self.instance.is_live:
            raise ValidationError(_("Only an open case can be given to a collector."))
        if collector is None:
            raise ValidationError(_("Choose the collector who takes the case over."))
        if not active_collectors().filter(pk=collector.pk).exists():
            raise ValidationError(_("%(user)s is not an active collector."), params={"user": collector.get_username()})
        return collector


CASE_FIELDSETS = (
    (None, {"fields": ("loan", "status", "stage", "pending_stage", "days_past_due", "outstanding", "overdue_amount")}),
    (
        _("Work"),
        {"fields": ("assigned_to", "priority", "next_action_on", "paused_until", "last_contact_at", "repeat_count")},
    ),
    (_("Approval"), {"fields": ("approval_requested_by", "approval_requested_at", "gate_snoozed_until")}),
    (
        _("Dates"),
        {"fields": ("opened_at", "stage_entered_at", "stage_entered_on", "resolved_at", "closed_at", "updated_at")},
    ),
)


@admin.register(Case)
class CaseAdmin(BigTableAdmin):
    form = CaseAdminForm
    list_display = (
        "id",
        "loan_link",
        "borrower_name",
        "stage",
        "status",
        "days_past_due",
        "outstanding",
        "assigned_to",
        "opened_at",
    )
    list_select_related = ("loan__borrower", "stage", "assigned_to")
    list_filter = ("status", "stage", CollectorFilter, "loan__borrower__language", LoanCurrencyFilter, "opened_at")
    search_fields = (
        "loan__external_id__exact",
        "loan__borrower__external_id__exact",
        "loan__borrower__phone__exact",
        "loan__borrower__name",
    )
    # Only the collector is editable today; raw ids all the same, so making another field
    # editable never brings back a <select> of every loan or user.
    raw_id_fields = ("loan", "assigned_to", "approval_requested_by")
    fieldsets = CASE_FIELDSETS
    inlines = (CaseEventInline, HoldInline, PromiseInline, PaymentPlanInline, ContactAttemptInline, NoteInline)

    loan_link = related_column("loan", Loan._meta.verbose_name, link=True)
    borrower_name = related_column("loan__borrower__name", Borrower._meta.verbose_name)

    def get_readonly_fields(self, request, obj=None):
        # Stage, status and amounts belong to the sweep and the services; only a supervisor's
        # reassignment is made here.
        editable = {"assigned_to"} if request.user.has_perm(ASSIGN_PERMISSION) else set()
        return [name for _title, opts in CASE_FIELDSETS for name in opts["fields"] if name not in editable]

    def has_add_permission(self, request) -> bool:
        return False  # the sweep opens cases when a loan becomes overdue

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        # Through the service, so the timeline records who moved the case. obj.save() would
        # also write back this page's copy of fields the sweep keeps changing.
        if "assigned_to" in form.changed_data:
            cases_reassign(case_ids=[obj.pk], to_user=form.cleaned_data["assigned_to"], by=request.user)


@admin.register(CaseEvent)
class CaseEventAdmin(ViewOnlyMixin, BigTableAdmin):
    list_display = ("at", "kind", "case_link", "loan_id_column", "actor_name", "detail")
    list_select_related = ("case__loan", "actor")
    list_filter = ("kind", "at")
    search_fields = CASE_SEARCH
    ordering = ("-at", "-id")
    raw_id_fields = ("case", "actor")

    case_link = related_column("case", Case._meta.verbose_name, link=True)
    loan_id_column = related_column("case__loan", Loan._meta.verbose_name, link=True)

    @admin.display(description=verbose(CaseEvent, "actor"), ordering="actor__username")
    def actor_name(self, obj: CaseEvent) -> str:
        return obj.actor.get_username() if obj.actor_id else _("system")


class CaseWorkAdmin(ViewOnlyMixin, BigTableAdmin):
    """Holds, promises, plans, contacts and notes: recorded through the portal's services,
    which write the matching timeline event, so listed here for search only."""

    search_fields = CASE_SEARCH
    case_link = related_column("case", Case._meta.verbose_name, link=True)
    loan_link = related_column("case__loan", Loan._meta.verbose_name, link=True)


@admin.register(Hold)
class HoldAdmin(CaseWorkAdmin):
    list_display = ("case_link", "loan_link", "reason", "starts_at", "ends_on", "released_at", "placed_by")
    list_select_related = ("case__loan", "placed_by")
    list_filter = ("reason", ("released_at", admin.EmptyFieldListFilter), "starts_at")
    raw_id_fields = ("case", "placed_by", "released_by")


@admin.register(PromiseToPay)
class PromiseToPayAdmin(CaseWorkAdmin):
    list_display = ("case_link", "loan_link", "amount", "due_date", "status", "created_at", "created_by")
    list_select_related = ("case__loan", "created_by")
    list_filter = ("status", "due_date")
    raw_id_fields = ("case", "created_by")


class PlanInstallmentInline(ViewOnlyInline):
    model = PlanInstallment
    fields = ("sequence", "due_date", "amount", "paid_amount")


@admin.register(PaymentPlan)
class PaymentPlanAdmin(CaseWorkAdmin):
    list_display = ("case_link", "loan_link", "status", "total_amount", "waived_amount", "created_at", "approved_by")
    list_select_related = ("case__loan", "approved_by")
    list_filter = ("status",)
    raw_id_fields = ("case", "created_by", "approved_by")

    inlines = (PlanInstallmentInline,)


@admin.register(ContactAttempt)
class ContactAttemptAdmin(CaseWorkAdmin):
    list_display = ("attempted_at", "case_link", "loan_link", "channel", "outcome", "connected", "collector")
    list_select_related = ("case__loan", "collector")
    list_filter = ("channel", "outcome", "connected", "attempted_at")
    raw_id_fields = ("case", "collector")


@admin.register(Note)
class NoteAdmin(CaseWorkAdmin):
    list_display = ("created_at", "case_link", "loan_link", "author", "__str__")
    list_select_related = ("case__loan", "author")
    raw_id_fields = ("case", "author")


@admin.register(SweepRun)
class SweepRunAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("as_of", "dry_run", "started_at", "finished_at")
    list_select_related = ()
    list_filter = ("dry_run",)
    date_hierarchy = "as_of"


@admin.register(BorrowerView)
class BorrowerViewAdmin(ViewOnlyMixin, BigTableAdmin):
    """Who viewed which borrower's personal data (append-only): for audits."""

    list_display = ("at", "user", "borrower", "what", "reason")
    list_select_related = ("user", "borrower")
    list_filter = ("what",)
    search_fields = ("=borrower__external_id", "=user__username")
    search_help_text = _("A borrower's external id or a username, exactly.")
    ordering = ("-at", "-id")
    raw_id_fields = ("user", "borrower")
