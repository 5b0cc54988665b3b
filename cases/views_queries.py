"""The reads behind the collector's pages (My queue and the case page).

Each function answers with a fixed number of queries whatever the number of cases, events
or installments, so the pages' query counts can be pinned in tests. Visibility always
starts from ``cases.selectors.cases_for_user``: a collector never reads another
collector's case, and asking for one is a 404.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Exists, F, OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _

from .actions import event_label
from .models import (
    Case,
    CaseEvent,
    ContactChannel,
    ContactOutcome,
    EventKind,
    Hold,
    HoldReason,
    Installment,
    PaymentPlan,
    PlanInstallment,
    PlanStatus,
    PromiseStatus,
    PromiseToPay,
    Stage,
)
from .models.cases import LIVE_STATUSES
from .selectors import business_date, call_cap_reached, cases_for_user

# The timeline shows the newest events; older ones stay in the admin and the API.
TIMELINE_LIMIT = 100


# --- My queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    stage: Stage | None = None
    min_dpd: int | None = None
    max_dpd: int | None = None
    broken_promise: bool = False


def queue_for_collector(*, user, filters: QueueFilters) -> QuerySet[Case]:
    """The live cases assigned to ``user``: highest priority first, then the earliest next action.

    Annotated with the pending promise's date and whether a promise of the case was broken,
    so the page needs no query per row.
    """
    broken = PromiseToPay.objects.filter(case=OuterRef("pk"), status=PromiseStatus.BROKEN)
    pending_promise = PromiseToPay.objects.filter(case=OuterRef("pk"), status=PromiseStatus.PENDING)
    cases = (
        cases_for_user(user)
        .filter(assigned_to=user, status__in=LIVE_STATUSES)
        .select_related("pending_stage")
        .annotate(
            has_broken_promise=Exists(broken),
            promise_due=Subquery(pending_promise.values("due_date")[:1]),
            promise_amount=Subquery(pending_promise.values("amount")[:1]),
        )
    )
    if filters.stage is not None:
        cases = cases.filter(stage=filters.stage)
    if filters.min_dpd is not None:
        cases = cases.filter(days_past_due__gte=filters.min_dpd)
    if filters.max_dpd is not None:
        cases = cases.filter(days_past_due__lte=filters.max_dpd)
    if filters.broken_promise:
        cases = cases.filter(has_broken_promise=True)
    # The id breaks ties so that a case never shows on two pages or on none.
    return cases.order_by("-priority", F("next_action_on").asc(nulls_last=True), "-days_past_due", "id")


# --- The case page -------------------------------------------------------------------------


@dataclass(frozen=True)
class StageStep:
    stage: Stage
    state: str  # "done", "current", "pending" (waiting for approval) or "ahead"


@dataclass(frozen=True)
class TimelineEntry:
    event: CaseEvent
    label: str
    summary: str


@dataclass
class CaseFile:
    """Everything the case page shows, read in a fixed number of queries."""

    case: Case
    installments: list[Installment]
    stage_path: list[StageStep]
    timeline: list[TimelineEntry]
    active_holds: list[Hold]
    past_holds: list[Hold]
    pending_promise: PromiseToPay | None
    last_promises: list[PromiseToPay]
    live_plan: PaymentPlan | None
    last_plan: PaymentPlan | None
    next_call_at: dt.datetime | None
    call_cap_limit: int | None
    overdue_installments: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def case_for_user_or_404(*, user, case_id: int) -> Case:
    """The case, if ``user`` may see it; a 404 otherwise (a collector learns nothing of others' cases)."""
    return get_object_or_404(
        cases_for_user(user).select_related("pending_stage", "loan__borrower", "stage", "assigned_to"),
        pk=case_id,
    )


def case_file(*, case: Case, now: dt.datetime | None = None) -> CaseFile:
    """The case page's data in 9 queries: stages, installments, timeline, holds, promises,
    plans, the plans' installments, and the call caps' policy and attempts."""
    today = business_date(now)
    stages = list(Stage.objects.active().order_by("order"))
    installments = list(Installment.objects.filter(loan_id=case.loan_id).order_by("due_date", "sequence"))
    events = list(CaseEvent.objects.filter(case=case).select_related("actor").order_by("-at", "-id")[:TIMELINE_LIMIT])
    holds = list(Hold.objects.filter(case=case).select_related("placed_by").order_by("-starts_at", "-id")[:20])
    promises = list(PromiseToPay.objects.filter(case=case).order_by("-created_at", "-id")[:5])
    plans = list(PaymentPlan.objects.filter(case=case).order_by("-created_at", "-id")[:2])
    # Read always (a prefetch would skip the query when there is no plan), so the page's
    # query count does not depend on whether the case has a plan.
    plan_rows: dict[int, list[PlanInstallment]] = {}
    for row in PlanInstallment.objects.filter(plan__case=case).order_by("plan_id", "sequence"):
        plan_rows.setdefault(row.plan_id, []).append(row)
    for plan in plans:
        plan.schedule = plan_rows.get(plan.pk, [])
    reached = call_cap_reached(case=case, now=now)

    def hold_is_active(hold: Hold) -> bool:
        return hold.released_at is None and (hold.ends_on is None or hold.ends_on >= today)

    return CaseFile(
        case=case,
        installments=installments,
        stage_path=stage_path(case, stages),
        timeline=[timeline_entry(event, stages) for event in events],
        active_holds=[h for h in holds if hold_is_active(h)],
        past_holds=[h for h in holds if not hold_is_active(h)],
        pending_promise=next((p for p in promises if p.status == PromiseStatus.PENDING), None),
        last_promises=promises,
        live_plan=next((p for p in plans if p.status in (PlanStatus.PROPOSED, PlanStatus.ACTIVE)), None),
        last_plan=plans[0] if plans else None,
        next_call_at=reached.next_allowed_at if reached else None,
        call_cap_limit=reached.limit if reached else None,
        overdue_installments=sum(1 for i in installments if i.due_date < today and i.paid_amount < i.amount),
    )


def stage_path(case: Case, stages: list[Stage]) -> list[StageStep]:
    """Warning to litigation, each marked done, current, pending approval or ahead."""
    current_order = case.stage.order if case.stage_id and case.stage else None
    steps = []
    for stage in stages:
        if case.stage_id == stage.pk:
            state = "current"
        elif case.pending_stage_id == stage.pk:
            state = "pending"
        elif current_order is not None and stage.order < current_order:
            state = "done"
        else:
            state = "ahead"
        steps.append(StageStep(stage, state))
    return steps


def _label(choices, value: Any) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value or "")


def _stage_name(stages: list[Stage], code: Any) -> str:
    for stage in stages:
        if stage.code == code:
            return stage.display_name
    return str(code or "—")


def timeline_entry(event: CaseEvent, stages: list[Stage]) -> TimelineEntry:
    """One line of the timeline in the reader's language, from the event's stored detail."""
    d = event.detail if isinstance(event.detail, dict) else {}
    kind = event.kind
    summary = ""
    if kind == EventKind.CONTACT:
        summary = f"{_label(ContactChannel, d.get('channel'))} · {_label(ContactOutcome, d.get('outcome'))}"
    elif kind == EventKind.PROMISE_MADE:
        due = parse_date(str(d.get("due_date", ""))) or d.get("due_date")
        summary = _("%(amount)s by %(date)s") % {"amount": d.get("amount", ""), "date": due}
    elif kind in (EventKind.HOLD_PLACED, EventKind.HOLD_RELEASED):
        summary = _label(HoldReason, d.get("reason"))
        if d.get("until"):
            summary += " · " + _("until %(date)s") % {"date": d["until"]}
        if d.get("note"):
            summary += " · " + str(d["note"])
    elif kind == EventKind.NOTE:
        summary = str(d.get("text", ""))
    elif kind == EventKind.STAGE_CHANGED:
        summary = f"{_stage_name(stages, d.get('from')) if d.get('from') else '—'} → {_stage_name(stages, d.get('to'))}"
    elif kind in (EventKind.AWAITING_APPROVAL, EventKind.APPROVED, EventKind.REJECTED):
        summary = _stage_name(stages, d.get("stage"))
        if d.get("reason") or d.get("note"):
            summary += " · " + str(d.get("reason") or d.get("note"))
    elif kind == EventKind.PLAN_PROPOSED:
        count = len(d.get("installments") or [])
        summary = _("%(total)s in %(count)s installments") % {"total": d.get("total", ""), "count": count}
        if d.get("waived") and Decimal(str(d["waived"])) > 0:
            summary += " · " + _("waiver %(amount)s") % {"amount": d["waived"]}
    elif kind == EventKind.PAYMENT:
        summary = str(d.get("amount", ""))
    elif kind == EventKind.PII_REVEALED:
        summary = _("%(field)s, reason: %(reason)s") % {
            "field": _("phone") if d.get("field") == "phone" else _("national id"),
            "reason": d.get("reason", ""),
        }
    elif kind == EventKind.MESSAGE:
        parts = [str(d.get(key)) for key in ("channel", "template", "outcome", "reason") if d.get(key)]
        summary = " · ".join(parts)
    elif kind == EventKind.OPENED:
        summary = _("%(days)s days past due") % {"days": d.get("days_past_due", "")}
    return TimelineEntry(event=event, label=event_label(kind), summary=summary)


def queue_stages() -> list[Stage]:
    return list(Stage.objects.active().order_by("order"))
