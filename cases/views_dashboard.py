"""Supervisor pages: the dashboard and its CSV exports, the team case list with bulk
reassignment, and the approvals waiting. They parse, call selectors and services, and
render; the figures and rules live in ``cases.dashboard``, the selectors and the services.

Access: the dashboard needs ``cases.view_dashboard``, the team list ``cases.assign_case``,
the approvals ``cases.approve_escalation`` (supervisors have all three; collectors get 403).
"""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from cases.dashboard import dashboard_panel, dashboard_panels
from cases.exceptions import ConflictError, PermissionDenied
from cases.forms_dashboard import DashboardRangeForm, DeclineForm, ReassignForm, TeamFilterForm
from cases.models import Case
from cases.selectors import business_date
from cases.selectors_dashboard import (
    approvals_waiting,
    collectors,
    count_up_to,
    last_refresh,
    list_page,
    stages_in_order,
    team_cases,
)
from cases.services.approvals import case_approve_escalation, case_decline_escalation
from cases.services.assignment import cases_reassign

CASES_PER_PAGE = 50
APPROVALS_ON_DASHBOARD = 10


def _range_form(request: HttpRequest) -> DashboardRangeForm:
    return DashboardRangeForm(request.GET or None, today=business_date())


@login_required
@permission_required("cases.view_dashboard", raise_exception=True)
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    form = _range_form(request)
    if request.GET and not form.is_valid():
        return render(request, "cases/dashboard.html", {"form": form}, status=400)
    if not request.GET:
        form = DashboardRangeForm({}, today=business_date())
        form.is_valid()
    period = form.period()
    panels = dashboard_panels(period)
    waiting = approvals_waiting()
    context = {
        "form": form,
        "period": period,
        "panels": [{"panel": p, "chart_json": json.dumps(p.chart.as_json()) if p.chart else ""} for p in panels],
        "approvals": list(waiting[:APPROVALS_ON_DASHBOARD]),
        "approvals_count": count_up_to(waiting),
        "refresh": last_refresh(),
        "query": request.GET.urlencode(),
    }
    return render(request, "cases/dashboard.html", context)


@login_required
@permission_required("cases.view_dashboard", raise_exception=True)
@require_safe
def dashboard_csv(request: HttpRequest, key: str) -> HttpResponse:
    form = _range_form(request)
    if request.GET and not form.is_valid():
        errors = "\n".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    if not request.GET:
        form = DashboardRangeForm({}, today=business_date())
        form.is_valid()
    period = form.period()
    panel = dashboard_panel(key, period)
    if panel is None:
        raise Http404(f"No dashboard table is called {key}.")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{key}-{period.start}-{period.end}.csv"'
    # A byte-order mark, so that spreadsheet programs read the Chinese labels as UTF-8.
    response.write("\ufeff")
    csv.writer(response).writerows(panel.csv_rows)
    return response


@login_required
@permission_required("cases.assign_case", raise_exception=True)
@require_http_methods(["GET", "HEAD", "POST"])
def team_case_list(request: HttpRequest) -> HttpResponse:
    """Every case with filters, 50 a page, and bulk reassignment of the ticked ones.

    A fixed number of queries whatever the number of cases: session and user, permissions,
    the stages and collectors for the filters, one SELECT of the page with every related
    row joined in, and a count of the matches that stops at 1,000 (an exact COUNT(*) over a
    million cases would cost more than the rest of the page).
    """
    stages, people = stages_in_order(), list(collectors())
    filters = TeamFilterForm(request.GET or None, stages=stages, people=people)
    reassign = ReassignForm(request.POST or None)
    if request.method == "POST" and reassign.is_valid():
        try:
            moved = cases_reassign(
                case_ids=[c.pk for c in reassign.cleaned_data["cases"]],
                to_user=reassign.cleaned_data["to_user"],
                by=request.user,
            )
        except (ConflictError, PermissionDenied) as error:
            messages.error(request, str(error))
        else:
            chosen, user = len(reassign.cleaned_data["cases"]), reassign.cleaned_data["to_user"].get_username()
            text = _("%(count)d of %(chosen)d cases reassigned to %(user)s.")
            if moved < chosen:
                text += " " + _("The others were already theirs, or are no longer live.")
            messages.success(request, text % {"count": moved, "chosen": chosen, "user": user})
            return redirect(f"{reverse('team_cases')}?{request.GET.urlencode()}")
    matching = team_cases(filters.filters())
    page = list_page(matching, page=request.GET.get("page"), per_page=CASES_PER_PAGE)
    status = 400 if (request.method == "POST" and reassign.errors) or (request.GET and filters.errors) else 200
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filters": filters,
        "reassign": reassign,
        "page": page,
        "matching": count_up_to(matching),
        "collectors": people,
        "query": query.urlencode(),
    }
    return render(request, "cases/team_cases.html", context, status=status)


@login_required
@permission_required("cases.approve_escalation", raise_exception=True)
@require_safe
def approval_list(request: HttpRequest) -> HttpResponse:
    waiting = approvals_waiting()
    page = list_page(waiting, page=request.GET.get("page"), per_page=CASES_PER_PAGE)
    return render(request, "cases/approvals.html", {"page": page, "waiting": count_up_to(waiting)})


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("approvals")


@login_required
@permission_required("cases.approve_escalation", raise_exception=True)
@require_POST
def approval_decide(request: HttpRequest, case_id: int) -> HttpResponse:
    """Approve or decline one waiting case (the services check the role and four eyes)."""
    decision = request.POST.get("decision")
    try:
        if decision == "approve":
            case = case_approve_escalation(case_id=case_id, approver=request.user)
            messages.success(
                request, _("Case %(id)d entered %(stage)s.") % {"id": case.pk, "stage": case.stage.display_name}
            )
        elif decision == "decline":
            form = DeclineForm(request.POST)
            if not form.is_valid():
                messages.error(request, _("Reason: %(error)s") % {"error": " ".join(form.errors["reason"])})
                return redirect(_back(request))
            case_decline_escalation(case_id=case_id, approver=request.user, reason=form.cleaned_data["reason"])
            messages.success(request, _("Escalation of case %(id)d declined.") % {"id": case_id})
        else:
            messages.error(request, _("Decision: choose approve or decline."))
    except Case.DoesNotExist as error:
        raise Http404(f"No case {case_id}.") from error
    except (ConflictError, PermissionDenied) as error:
        messages.error(request, str(error))
    except ValidationError as error:
        # A stage guard refused (legal's limitation check): show its reason.
        for reasons in error.message_dict.values():
            for reason in reasons:
                messages.error(request, reason)
    return redirect(_back(request))
