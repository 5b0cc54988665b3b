"""Pages of legal staff and supervisors. Access is checked first; services do the rest.

Anonymous users go to the login page; logged-in users without the role get 403; an
unknown matter or document is 404. Letters are streamed from private storage here and
nowhere else (there is no public URL for them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from cases.exceptions import ConflictError, PermissionDenied
from cases.models import Case, EventKind

from . import events
from . import forms as legal_forms
from .models import Agency, LegalMatter, MatterStatus, Placement
from .roles import DOWNLOAD_DOCUMENTS, MANAGE_MATTERS, RECALL_PLACEMENTS, VIEW_MATTERS, VIEW_PLACEMENTS
from .selectors import (
    agency_performance,
    case_timeline,
    legal_document_get,
    legal_matter_detail,
    legal_matters_list,
    placements_list,
    unplaced_cases,
    upcoming_hearings,
)
from .services import matters as matter_services
from .services.matters import allowed_transitions
from .services.placements import case_replace, placement_recall

PER_PAGE = 50
EVENT_LABELS = {**dict(EventKind.choices), **events.LABELS}


def permission_required(permission: str) -> Callable:
    """login_required, then 403 for a user without ``permission``."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perm(permission):
                raise DjangoPermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


# --- legal matters -------------------------------------------------------------------------


@require_safe
@permission_required(VIEW_MATTERS)
def matter_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or ""
    if status not in MatterStatus.values:
        status = ""
    page = Paginator(legal_matters_list(status=status or None), PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "legal/matter_list.html",
        {"page": page, "status": status, "statuses": MatterStatus.choices},
    )


# step slug -> (target status, form class, service call taking the matter id, user and cleaned data)
STEPS: dict[str, tuple[str, type[forms.Form], Callable]] = {
    "letter-sent": (
        MatterStatus.LETTER_SENT,
        legal_forms.EmptyForm,
        lambda mid, user, data: matter_services.matter_mark_letter_sent(matter_id=mid, user=user),
    ),
    "file": (
        MatterStatus.FILED,
        legal_forms.FileForm,
        lambda mid, user, data: matter_services.matter_file(matter_id=mid, user=user, **data),
    ),
    "hearing": (
        MatterStatus.HEARING_SCHEDULED,
        legal_forms.HearingForm,
        lambda mid, user, data: matter_services.matter_schedule_hearing(matter_id=mid, user=user, **data),
    ),
    "judgment": (
        MatterStatus.JUDGMENT,
        legal_forms.JudgmentForm,
        lambda mid, user, data: matter_services.matter_record_judgment(matter_id=mid, user=user, **data),
    ),
    "enforcement": (
        MatterStatus.ENFORCEMENT,
        legal_forms.EmptyForm,
        lambda mid, user, data: matter_services.matter_start_enforcement(matter_id=mid, user=user),
    ),
    "close": (
        MatterStatus.CLOSED,
        legal_forms.CloseForm,
        lambda mid, user, data: matter_services.matter_close(matter_id=mid, user=user, **data),
    ),
}


def _step_forms(matter: LegalMatter) -> list[tuple[str, str, forms.Form]]:
    """The forms of the moves allowed from the matter's status (plus another hearing date
    while one is scheduled)."""
    allowed = set(allowed_transitions(matter.status))
    if matter.status == MatterStatus.HEARING_SCHEDULED:
        allowed.add(MatterStatus.HEARING_SCHEDULED)
    return [
        (slug, MatterStatus(target).label, form_class(prefix=slug))
        for slug, (target, form_class, _call) in STEPS.items()
        if target in allowed
    ]


@require_safe
@permission_required(VIEW_MATTERS)
def matter_detail(request: HttpRequest, matter_id: int) -> HttpResponse:
    matter = legal_matter_detail(matter_id=matter_id)
    if matter is None:
        raise Http404(_("No such legal matter."))
    timeline = [(event, EVENT_LABELS.get(event.kind, event.kind)) for event in case_timeline(case_id=matter.case_id)]
    return render(
        request,
        "legal/matter_detail.html",
        {
            "matter": matter,
            "timeline": timeline,
            "step_forms": _step_forms(matter) if request.user.has_perm(MANAGE_MATTERS) else [],
            "can_download": request.user.has_perm(DOWNLOAD_DOCUMENTS),
        },
    )


@require_POST
@permission_required(MANAGE_MATTERS)
def matter_step(request: HttpRequest, matter_id: int, step: str) -> HttpResponse:
    if step not in STEPS:
        raise Http404(_("No such step."))
    if not LegalMatter.objects.filter(pk=matter_id).exists():
        raise Http404(_("No such legal matter."))
    _target, form_class, call = STEPS[step]
    form = form_class(request.POST, prefix=step)
    back = reverse("legal:matter", args=[matter_id])
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else field
            messages.error(request, f"{label}: {' '.join(errors)}")
        return redirect(back)
    try:
        call(matter_id, request.user, form.cleaned_data)
    except PermissionDenied as error:
        raise DjangoPermissionDenied(str(error)) from error
    except ConflictError as error:
        messages.error(request, error.message)
    except ValidationError as error:
        for field, errors in error.message_dict.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
    else:
        messages.success(request, _("Legal matter updated."))
    return redirect(back)


@require_safe
@permission_required(VIEW_MATTERS)
def hearing_list(request: HttpRequest) -> HttpResponse:
    return render(request, "legal/hearing_list.html", {"hearings": upcoming_hearings()})


@require_safe
@permission_required(DOWNLOAD_DOCUMENTS)
def document_download(request: HttpRequest, document_id: int) -> FileResponse:
    document = legal_document_get(document_id=document_id)
    if document is None:
        raise Http404(_("No such document."))
    try:
        handle = document.file.open("rb")
    except FileNotFoundError as error:
        raise Http404(_("The file of this document is missing.")) from error
    response = FileResponse(handle, as_attachment=True, filename=document.file.name.rsplit("/", 1)[-1])
    # Never cached by a proxy or the browser's shared cache: it is personal data.
    response["Cache-Control"] = "private, no-store"
    response["X-Content-SHA256"] = document.sha256
    return response


# --- agencies and placements ------------------------------------------------------------------


@require_safe
@permission_required(VIEW_PLACEMENTS)
def agency_performance_page(request: HttpRequest) -> HttpResponse:
    return render(request, "legal/agency_performance.html", {"rows": agency_performance()})


@require_safe
@permission_required(VIEW_PLACEMENTS)
def placement_list(request: HttpRequest) -> HttpResponse:
    current_only = request.GET.get("current") == "1"
    page = Paginator(placements_list(current_only=current_only), PER_PAGE).get_page(request.GET.get("page"))
    can_recall = request.user.has_perm(RECALL_PLACEMENTS)
    return render(
        request,
        "legal/placement_list.html",
        {
            "page": page,
            "current_only": current_only,
            "can_recall": can_recall,
            "recall_form": legal_forms.RecallForm(),
            # Evaluated once here: a form field would query the agencies again for every row.
            "agencies": list(Agency.objects.filter(active=True).only("pk", "name")) if can_recall else [],
            # The dashboard's flag, shown here too so legal staff can place them by hand.
            "unplaced": list(unplaced_cases()[:PER_PAGE]),
        },
    )


@require_POST
@permission_required(RECALL_PLACEMENTS)
def placement_recall_view(request: HttpRequest, placement_id: int) -> HttpResponse:
    if not Placement.objects.filter(pk=placement_id).exists():
        raise Http404(_("No such placement."))
    form = legal_forms.RecallForm(request.POST)
    form.is_valid()  # both fields are optional; cleaned_data holds what parsed
    try:
        _placement, result = placement_recall(
            placement_id=placement_id,
            user=request.user,
            note=form.cleaned_data.get("note", ""),
            replace=form.cleaned_data.get("replace", False),
        )
    except ConflictError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Placement recalled."))
        if result is not None:
            messages.success(request, _("The case was placed with another agency."))
    return redirect("legal:placements")


@require_POST
@permission_required(RECALL_PLACEMENTS)
def case_place_view(request: HttpRequest, case_id: int) -> HttpResponse:
    if not Case.objects.filter(pk=case_id).exists():
        raise Http404(_("No such case."))
    form = legal_forms.PlaceForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Agency: %(error)s") % {"error": " ".join(form.errors.get("agency", []))})
        return redirect("legal:placements")
    agency = form.cleaned_data.get("agency")
    try:
        case_replace(case_id=case_id, user=request.user, agency_id=agency.pk if agency else None)
    except ConflictError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Case placed with an agency."))
    return redirect("legal:placements")
