"""Sending an approved template by hand from a case page (the collector's "send a template").

``cases`` may not import this app, so the case page learns of this panel through
``cases.views_case.register_case_panel`` (registered in ``NotificationsConfig.ready``). The
view previews the rendered text and what the compliance policy says about sending it now,
and sends through the outbox (``message_send_manual``), which applies the same policy.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from cases.models import Case
from cases.views_case import render_case_page
from cases.views_queries import case_for_user_or_404

from .models import MessageTemplate, Reason
from .outbox import manual_preview, message_send_manual
from .policy import DEFER, SEND

SEND_PERMISSION = "cases.add_contactattempt"  # whoever works cases may send an approved template


def sendable_templates(case: Case) -> list[MessageTemplate]:
    """Approved, active templates in the borrower's language: one query."""
    return list(
        MessageTemplate.objects.filter(approved=True, active=True, language=case.loan.borrower.language)
        .select_related("stage")
        .order_by("stage__order", "channel", "name")
    )


class SendTemplateForm(forms.Form):
    template = forms.TypedChoiceField(label=gettext_lazy("Template"), coerce=int)

    def __init__(self, *args, templates: list[MessageTemplate], **kwargs):
        super().__init__(*args, **kwargs)
        self.templates = {t.pk: t for t in templates}
        self.fields["template"].choices = [(t.pk, f"{t.name} ({t.get_channel_display()})") for t in templates]

    @property
    def chosen(self) -> MessageTemplate:
        return self.templates[self.cleaned_data["template"]]


def decision_text(decision) -> str:
    """What the policy's decision means for the collector, in plain words."""
    reason = Reason(decision.reason).label if decision.reason in Reason.values else decision.reason
    if decision.action == SEND:
        return _("The policy lets it go now.")
    if decision.action == DEFER:
        when = timezone.localtime(decision.not_before).strftime("%Y-%m-%d %H:%M %Z") if decision.not_before else ""
        return _("It would wait until %(when)s: %(reason)s.") % {"when": when, "reason": reason}
    return _("It would not be sent: %(reason)s.") % {"reason": reason}


def case_send_panel(request: HttpRequest, case: Case) -> dict | None:
    """The case page's "Send a template" panel, for users who may send and on live cases."""
    if not case.is_live or not request.user.has_perm(SEND_PERMISSION):
        return None
    form = SendTemplateForm(templates=sendable_templates(case), auto_id="send_%s")
    return {
        "title": _("Send an approved template"),
        "template": "notifications/_case_send_panel.html",
        "context": {"form": form, "case": case},
    }


@login_required
@require_http_methods(["GET", "POST"])
def case_send(request: HttpRequest, case_id: int) -> HttpResponse:
    """GET ?template=ID: the preview and the policy's verdict. POST: send it through the outbox."""
    case = case_for_user_or_404(user=request.user, case_id=case_id)
    allowed = request.user.has_perm(SEND_PERMISSION) and case.is_live
    templates = sendable_templates(case) if allowed else []
    form = SendTemplateForm(request.POST if request.method == "POST" else request.GET, templates=templates)
    context = {"case": case, "form": form, "allowed": allowed}
    if not allowed:
        form.errors.clear()
        context["refusal"] = _("You may not send messages on this case.")
        return render(request, "notifications/case_send.html", context, status=403)
    if not form.is_valid():
        return render(request, "notifications/case_send.html", context, status=400)
    template = form.chosen
    if request.method == "GET":
        body, decision = manual_preview(case=case, template=template)
        context.update({"preview": body, "verdict": decision_text(decision), "sends_now": decision.action == SEND})
        if request.htmx:
            return render(request, "notifications/_case_send_preview.html", context)
        return render(request, "notifications/case_send.html", context)
    _sent, decision = message_send_manual(case=case, template=template, by=request.user)
    flash = _("Message queued: %(verdict)s") % {"verdict": decision_text(decision)}
    if request.htmx:
        return render_case_page(request, case_for_user_or_404(user=request.user, case_id=case_id), flash=flash)
    messages.success(request, flash)
    return redirect("case-detail", case_id=case.pk)
