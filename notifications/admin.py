"""Django admin for notifications: the compliance policy, message templates (checked,
previewed and approved here), forbidden wording, and the outbox and SMS records, which
are shown but written only by the services that keep them consistent."""

from django.contrib import admin, messages
from django.db.models import Q
from django.template import TemplateSyntaxError
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from cases.admin import BigTableAdmin, ViewOnlyMixin
from cases.models.borrowers import mask_identifier
from cases.validators import validate_e164_phone

from .forms import MessageTemplateForm
from .models import (
    Channel,
    CompliancePolicy,
    ForbiddenPhrase,
    InboundSms,
    MessageTemplate,
    OutboundMessage,
    Reason,
    SmsOptOut,
)
from .templating import WITHDRAWN, preview_context, render, sms_segments, template_apply_approval, templates_approve


def mask_phone(value: str) -> str:
    """+8613812345678 -> **********5678: enough to tell numbers apart, not to dial one."""
    return mask_identifier(value, keep_start=0, keep_end=4)


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


# --- Message templates --------------------------------------------------------------------


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ("name", "stage", "channel", "language", "approved", "active", "updated_at")
    list_filter = ("channel", "language", "approved", "active", "stage")
    list_select_related = ("stage",)
    search_fields = ("name",)
    actions = ("approve_selected",)
    readonly_fields = ("preview", "sms_length", "approved_by", "approved_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "stage", "channel", "language", "active")}),
        (_("Text"), {"fields": ("subject", "body", "html_body")}),
        (_("Preview"), {"fields": ("preview", "sms_length")}),
        (_("Approval"), {"fields": ("approved", "approved_by", "approved_at", "updated_at")}),
    )

    def save_model(self, request, obj: MessageTemplate, form: MessageTemplateForm, change: bool) -> None:
        outcome = template_apply_approval(
            template=obj,
            was_approved=bool(form.initial.get("approved")) if change else False,
            text_changed=change and form.text_changed(),
            by=request.user,
        )
        super().save_model(request, obj, form, change)
        if outcome == WITHDRAWN:
            self.message_user(
                request,
                _("The text of %(name)s changed, so it is no longer approved: approve it again before it is sent.")
                % {"name": obj.name},
                messages.WARNING,
            )

    @admin.action(description=_("Approve selected templates"), permissions=["change"])
    def approve_selected(self, request, queryset) -> None:
        approved, refused = templates_approve(template_ids=list(queryset.values_list("pk", flat=True)), by=request.user)
        if approved:
            self.message_user(
                request,
                ngettext("Approved %(count)d template.", "Approved %(count)d templates.", approved)
                % {"count": approved},
                messages.SUCCESS,
            )
        for name, errors in refused.items():
            problems = "; ".join(message for field_errors in errors.values() for message in field_errors)
            self.message_user(
                request,
                _("Not approved: %(name)s: %(problems)s") % {"name": name, "problems": problems},
                messages.ERROR,
            )
        if not approved and not refused:
            self.message_user(request, _("The selected templates were already approved."), messages.INFO)

    def _preview(self, obj: MessageTemplate) -> dict:
        """Rendered once per page for both read-only fields."""
        cached = getattr(obj, "_admin_preview", None)
        if cached is None:
            context, case_id = preview_context(language=obj.language, channel=obj.channel)
            try:
                cached = {"rendered": render(obj, context), "case_id": case_id, "error": ""}
            except TemplateSyntaxError as exc:  # text stored before the checks, or edited in the database
                cached = {"rendered": None, "case_id": case_id, "error": str(exc)}
            obj._admin_preview = cached
        return cached

    @admin.display(description=_("preview"))
    def preview(self, obj: MessageTemplate | None) -> str:
        if obj is None or obj.pk is None:
            return _("Save the template to see a preview.")
        data = self._preview(obj)
        case_url = reverse("admin:cases_case_change", args=[data["case_id"]]) if data["case_id"] else ""
        return render_to_string(
            "admin/notifications/messagetemplate/preview.html", {**data, "case_url": case_url, "template": obj}
        )

    @admin.display(description=_("SMS length"))
    def sms_length(self, obj: MessageTemplate | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        if obj.channel != Channel.SMS:
            return _("Not an SMS.")
        rendered = self._preview(obj)["rendered"]
        if rendered is None:
            return "-"
        encoding, segments = sms_segments(rendered.body)
        if encoding == "UCS-2":
            per_message = _("UCS-2 (Chinese or other non-GSM characters): 70 characters fit one SMS, 67 per part.")
        else:
            per_message = _("GSM-7: 160 characters fit one SMS, 153 per part; € [ ] { } ~ ^ | \\ count twice.")
        return ngettext(
            "%(encoding)s, %(segments)d segment for the preview above (%(length)d characters). %(rule)s",
            "%(encoding)s, %(segments)d segments for the preview above (%(length)d characters). %(rule)s",
            segments,
        ) % {"encoding": encoding, "segments": segments, "length": len(rendered.body), "rule": per_message}


@admin.register(ForbiddenPhrase)
class ForbiddenPhraseAdmin(admin.ModelAdmin):
    """Admins extend the list; templates are checked against it when saved or approved."""

    list_display = ("phrase", "language", "why", "active")
    list_filter = ("language", "active")
    list_editable = ("active",)
    search_fields = ("phrase", "why")


# --- Outbox and SMS records -----------------------------------------------------------------


class ReasonFilter(admin.SimpleListFilter):
    """The reasons are a fixed list: offered from it, not by a DISTINCT over the outbox."""

    title = _("reason")
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return Reason.choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        # Holds are stored with their kind ("hold:dispute"): the filter takes them all.
        return queryset.filter(Q(reason=value) | Q(reason__startswith=f"{value}:"))


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ViewOnlyMixin, BigTableAdmin):
    list_display = (
        "id",
        "case",
        "channel",
        "to_masked",
        "status",
        "reason",
        "attempts",
        "scheduled_for",
        "sent_at",
    )
    list_filter = ("status", "channel", ReasonFilter)
    list_select_related = ("case",)
    raw_id_fields = ("case", "borrower", "template", "stage", "created_by")
    search_fields = ("provider_id", "case__id")
    search_help_text = _("A provider message id (e.g. SM…) or a case number, exactly.")
    show_full_result_count = False
    fields = (
        "case",
        "borrower",
        "channel",
        "to_masked",
        "language",
        "template",
        "stage",
        "action",
        "repeat_number",
        "status",
        "reason",
        "scheduled_for",
        "attempts",
        "provider_id",
        "error_code",
        "error_message",
        "subject",
        "body",
        "created_by",
        "created_at",
        "claimed_at",
        "sent_at",
        "delivered_at",
    )
    readonly_fields = fields

    @admin.display(description=_("to"), ordering="to")
    def to_masked(self, obj: OutboundMessage) -> str:
        return mask_phone(obj.to) if obj.channel == Channel.SMS else obj.to

    def get_search_results(self, request, queryset, search_term):
        # Exact matches only, each on an index: a substring search would read the whole outbox.
        term = search_term.strip().lstrip("#")
        if not term:
            return queryset, False
        condition = Q(provider_id=term)
        if term.isdigit() and len(term) < 19:  # fits a bigint
            condition |= Q(case_id=int(term))
        return queryset.filter(condition), False


@admin.register(SmsOptOut)
class SmsOptOutAdmin(BigTableAdmin):
    """Opt-outs change through the same service as an inbound STOP, so the borrowers'
    flags, their unsent SMS and their case timelines follow. Never deleted: deleting would
    quietly let SMS go to a number that asked us to stop."""

    list_display = ("phone_masked", "opted_out", "source", "keyword", "changed_at")
    list_filter = ("opted_out", "source")
    search_fields = ("phone",)
    search_help_text = _("A phone number in E.164, exactly.")

    def get_fields(self, request, obj=None):
        return ("phone",) if obj is None else ("phone", "opted_out", "source", "keyword", "changed_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("phone", "source", "keyword", "changed_at")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "phone":
            field.validators.append(validate_e164_phone)
            field.help_text = _("E.164, e.g. +8613812345678. Saving stops SMS to this number at once.")
        if db_field.name == "opted_out":
            field.help_text = _("Untick only when the borrower asked to receive SMS again.")
        return field

    def save_model(self, request, obj: SmsOptOut, form, change: bool) -> None:
        # Imported when used: notifications.optouts is committed separately, and this module
        # is imported at startup, so it must load without it.
        from .optouts import sms_opt_in_record, sms_opt_out_record

        if not change or obj.opted_out:
            sms_opt_out_record(phone=obj.phone, source="admin", keyword="")
        else:
            sms_opt_in_record(phone=obj.phone, keyword="")
        obj.pk = SmsOptOut.objects.values_list("pk", flat=True).get(phone=obj.phone)

    @admin.display(description=_("phone"), ordering="phone")
    def phone_masked(self, obj: SmsOptOut) -> str:
        return mask_phone(obj.phone)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(phone=term), False) if term else (queryset, False)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InboundSms)
class InboundSmsAdmin(ViewOnlyMixin, BigTableAdmin):
    list_display = ("received_at", "from_masked", "body", "action")
    list_filter = ("action",)
    search_fields = ("from_number",)
    search_help_text = _("A phone number in E.164, exactly.")
    fields = ("received_at", "from_masked", "to_number", "body", "action", "provider_id")
    readonly_fields = fields

    @admin.display(description=_("from"), ordering="from_number")
    def from_masked(self, obj: InboundSms) -> str:
        return mask_phone(obj.from_number)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(from_number=term), False) if term else (queryset, False)
