"""The case page and its actions.

Every action is a plain form POST that works without JavaScript (it redirects back to the
case page with a message, or shows the page again with the errors). With htmx the same
POST answers with the case page's body only, which htmx swaps in place: the figures,
timeline and panels all reflect the change at once. The rules live in
``cases.services.work``; these views parse, call and render.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from .exceptions import CallCapReached, ConflictError
from .exceptions import PermissionDenied as CasePermissionDenied
from .forms import (
    ContactForm,
    HoldForm,
    HoldReleaseForm,
    NoteForm,
    PlanForm,
    PromiseForm,
    RevealForm,
    apply_service_errors,
)
from .models import Case, Hold
from .services.work import (
    HOLD_PERMISSION,
    borrower_reveal,
    contact_log,
    hold_place,
    hold_release,
    mask_id,
    mask_phone,
    note_add,
    plan_propose,
    promise_create,
)
from .views_queries import case_file, case_for_user_or_404

# Extra panels other apps show on the case page (e.g. notifications' "send a template"),
# registered from their AppConfig.ready so that `cases` never imports them. A provider
# takes (request, case) and returns None or a dict with "title", "template" and "context".
CasePanelProvider = Callable[[HttpRequest, Case], "dict | None"]
_panel_providers: dict[str, CasePanelProvider] = {}


def register_case_panel(name: str, provider: CasePanelProvider | None) -> None:
    if provider is None:
        _panel_providers.pop(name, None)
    else:
        _panel_providers[name] = provider


def _blank_forms(request: HttpRequest) -> dict:
    return {
        "contact": ContactForm(prefix="contact"),
        "promise": PromiseForm(prefix="promise"),
        "plan": PlanForm(prefix="plan"),
        "note": NoteForm(prefix="note"),
        "hold": HoldForm(prefix="hold", any_reason=request.user.has_perm(HOLD_PERMISSION)),
        "reveal": RevealForm(prefix="reveal"),
    }


def _render_case(
    request: HttpRequest,
    case: Case,
    *,
    bound: dict | None = None,
    status: int = 200,
    flash: str = "",
    revealed: dict | None = None,
) -> HttpResponse:
    forms = _blank_forms(request)
    forms.update(bound or {})
    borrower = case.loan.borrower
    panels = [p for p in (provider(request, case) for provider in _panel_providers.values()) if p]
    context = {
        "case": case,
        "file": case_file(case=case),
        "forms": forms,
        "open_panel": next(iter(bound), "") if bound else "",
        "flash": flash,
        "revealed": revealed or {},
        "masked_phone": mask_phone(borrower.phone),
        "masked_id": mask_id(borrower.national_id),
        "panels": panels,
    }
    if request.htmx:
        # htmx swaps only 2xx answers, so errors come back as 200 with the form in error.
        return render(request, "cases/_case_body.html", context)
    return render(request, "cases/case.html", context, status=status)


def render_case_page(request: HttpRequest, case: Case, *, flash: str = "") -> HttpResponse:
    """The case page (or, for htmx, its body) after another app's action, e.g. a sent message."""
    return _render_case(request, case, flash=flash)


@login_required
@require_safe
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    case = case_for_user_or_404(user=request.user, case_id=case_id)
    return _render_case(request, case)


def _act(
    request: HttpRequest,
    case_id: int,
    key: str,
    form,
    perform: Callable[[Case], str | dict],
    field_map: dict[str, str] | None = None,
) -> HttpResponse:
    """Run one action: validate the form, call the service, and answer (see module docstring)."""
    case = case_for_user_or_404(user=request.user, case_id=case_id)
    status = 400
    if form.is_valid():
        try:
            outcome = perform(case)
        except ValidationError as error:
            apply_service_errors(form, error, field_map)
        except CallCapReached as error:
            form.add_error(None, error.message)
            status = 409
        except ConflictError as error:
            target = (field_map or {}).get(error.field or "", error.field)
            form.add_error(target if target in form.fields else None, error.message)
            status = 409
        except CasePermissionDenied as error:
            form.add_error(None, str(error))
            status = 403
        else:
            # Re-read: the action may have changed the status, the pause or the holds.
            case = case_for_user_or_404(user=request.user, case_id=case_id)
            if isinstance(outcome, dict):  # a revealed value: shown once, never stored in a message
                return _render_case(request, case, flash=outcome["flash"], revealed=outcome)
            if not request.htmx:
                messages.success(request, outcome)
                return redirect("case-detail", case_id=case.pk)
            return _render_case(request, case, flash=outcome)
    return _render_case(request, case, bound={key: form}, status=status)


@login_required
@require_POST
def contact_create(request: HttpRequest, case_id: int) -> HttpResponse:
    form = ContactForm(request.POST, prefix="contact")

    def perform(case: Case) -> str:
        data = form.cleaned_data
        # The call and the promise made on it are kept together: both or neither.
        with transaction.atomic():
            contact_log(case=case, by=request.user, channel=data["channel"], outcome=data["outcome"], note=data["note"])
            if form.has_promise:
                promise_create(
                    case=case, by=request.user, amount=data["promise_amount"], due_date=data["promise_due_date"]
                )
                return _("Contact logged and promise to pay recorded.")
        return _("Contact logged.")

    return _act(
        request,
        case_id,
        "contact",
        form,
        perform,
        field_map={"amount": "promise_amount", "due_date": "promise_due_date"},
    )


@login_required
@require_POST
def promise_create_view(request: HttpRequest, case_id: int) -> HttpResponse:
    form = PromiseForm(request.POST, prefix="promise")

    def perform(case: Case) -> str:
        promise_create(
            case=case, by=request.user, amount=form.cleaned_data["amount"], due_date=form.cleaned_data["due_date"]
        )
        return _("Promise to pay recorded.")

    return _act(request, case_id, "promise", form, perform)


@login_required
@require_POST
def plan_create(request: HttpRequest, case_id: int) -> HttpResponse:
    form = PlanForm(request.POST, prefix="plan")

    def perform(case: Case) -> str:
        plan_propose(
            case=case,
            by=request.user,
            installments=form.installments(),
            waived_amount=form.cleaned_data["waived_amount"] or 0,
            note=form.cleaned_data["note"],
        )
        return _("Payment plan proposed. A supervisor approves it.")

    return _act(request, case_id, "plan", form, perform)


@login_required
@require_POST
def note_create(request: HttpRequest, case_id: int) -> HttpResponse:
    form = NoteForm(request.POST, prefix="note")

    def perform(case: Case) -> str:
        note_add(case=case, by=request.user, text=form.cleaned_data["text"])
        return _("Note added.")

    return _act(request, case_id, "note", form, perform)


@login_required
@require_POST
def hold_create(request: HttpRequest, case_id: int) -> HttpResponse:
    form = HoldForm(request.POST, prefix="hold", any_reason=request.user.has_perm(HOLD_PERMISSION))

    def perform(case: Case) -> str:
        data = form.cleaned_data
        hold_place(case=case, by=request.user, reason=data["reason"], until=data["until"], note=data["note"])
        return _("Hold placed: no escalation and no automated messages while it lasts.")

    return _act(request, case_id, "hold", form, perform)


@login_required
@require_POST
def hold_release_view(request: HttpRequest, case_id: int, hold_id: int) -> HttpResponse:
    form = HoldReleaseForm(request.POST, prefix="release")
    visible = case_for_user_or_404(user=request.user, case_id=case_id)
    hold = get_object_or_404(Hold, pk=hold_id, case=visible)

    def perform(case: Case) -> str:
        hold_release(hold=hold, by=request.user, note=form.cleaned_data["note"])
        return _("Hold released.")

    return _act(request, case_id, "release", form, perform)


@login_required
@require_POST
def reveal(request: HttpRequest, case_id: int) -> HttpResponse:
    form = RevealForm(request.POST, prefix="reveal")

    def perform(case: Case) -> dict:
        field = form.cleaned_data["field"]
        value = borrower_reveal(case=case, by=request.user, field=field, reason=form.cleaned_data["reason"])
        return {"field": field, "value": value, "flash": _("Shown once and recorded on the timeline.")}

    return _act(request, case_id, "reveal", form, perform)
