"""Opening, moving and resolving one loan's case.

``case_evaluate_loan`` applies the rules of CONTRACT section 4 to a single loan, right
away: the payment service calls it so a full payment resolves the case at once, and the
demo uses it to place its loans. The scheduled sweep applies the same rules to every
loan at once with set-based SQL.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from cases.actions import StageEntry, run_stage_actions
from cases.models import Case, CaseStatus, EventKind, Loan, PaymentPlan, PromiseToPay
from cases.models.cases import LIVE_STATUSES
from cases.models.work import PlanStatus, PromiseStatus
from cases.selectors import (
    active_stages,
    case_has_active_hold,
    loan_balance,
    stage_target,
)
from cases.signals import cases_resolved

from .events import event_record


@transaction.atomic
def case_evaluate_loan(*, loan: Loan, as_of: dt.date, actor=None, now: dt.datetime | None = None) -> Case | None:
    """Bring the loan's case in line with its days past due on ``as_of``; return the live case.

    Opens a case when DPD reaches the first stage's threshold, moves it forward (never
    back) unless it is held or paused by a promise, stops below a stage that requires
    approval, and resolves it when DPD returns to 0. Safe to call any number of times:
    a second call with the same data changes nothing.
    """
    now = now or timezone.now()
    balance = loan_balance(loan_id=loan.pk, as_of=as_of)
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("stage")
        .filter(loan=loan, status__in=LIVE_STATUSES)
        .first()
    )

    if balance.days_past_due == 0:
        if case is not None:
            case_resolve(case=case, actor=actor, now=now, outstanding=balance.outstanding)
        return None

    stages = active_stages()
    if case is None:
        if not stages or balance.days_past_due < stages[0].entry_dpd:
            return None
        case = Case.objects.create(
            loan=loan,
            status=CaseStatus.OPEN,
            days_past_due=balance.days_past_due,
            outstanding=balance.outstanding,
            overdue_amount=balance.overdue_amount,
            opened_at=now,
        )
        event_record(
            case=case,
            kind=EventKind.OPENED,
            actor=actor,
            at=now,
            detail={"days_past_due": balance.days_past_due},
        )

    changed = []
    for field, value in (
        ("days_past_due", balance.days_past_due),
        ("outstanding", balance.outstanding),
        ("overdue_amount", balance.overdue_amount),
    ):
        if getattr(case, field) != value:
            setattr(case, field, value)
            changed.append(field)

    held = case_has_active_hold(case_id=case.pk, as_of=as_of)
    paused = case.paused_until is not None and case.paused_until >= as_of
    if held:
        if case.status != CaseStatus.ON_HOLD:
            case.status = CaseStatus.ON_HOLD
            changed.append("status")
    elif case.status == CaseStatus.ON_HOLD:
        case.status = CaseStatus.AWAITING_APPROVAL if case.pending_stage_id else CaseStatus.OPEN
        changed.append("status")

    entry: StageEntry | None = None
    if not held and not paused:
        enter, gate = stage_target(stages=stages, current=case.stage, dpd=balance.days_past_due)
        if enter is not None:
            previous = case.stage
            case.stage = enter
            case.stage_entered_at = now
            changed += ["stage", "stage_entered_at"]
            event_record(
                case=case,
                kind=EventKind.STAGE_CHANGED,
                actor=actor,
                at=now,
                detail={
                    "from": previous.code if previous else None,
                    "to": enter.code,
                    "days_past_due": balance.days_past_due,
                },
            )
            entry = StageEntry(
                case_id=case.pk,
                loan_id=loan.pk,
                stage_id=enter.pk,
                stage_code=enter.code,
                previous_stage_code=previous.code if previous else None,
                entered_at=now,
                actor_id=getattr(actor, "pk", None),
            )
        if gate is not None and case.pending_stage_id != gate.pk:
            case.pending_stage = gate
            case.status = CaseStatus.AWAITING_APPROVAL
            changed += ["pending_stage", "status"]
            event_record(
                case=case,
                kind=EventKind.AWAITING_APPROVAL,
                actor=actor,
                at=now,
                detail={"stage": gate.code, "days_past_due": balance.days_past_due},
            )

    if changed:
        case.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
    if entry is not None:
        run_stage_actions([entry], {s.pk: list(s.entry_actions) for s in stages})
    return case


def case_resolve(*, case: Case, actor=None, now: dt.datetime | None = None, outstanding=None) -> Case:
    """Close a cured case: DPD is back to 0. Pending promises and live plans count as kept,
    and listeners (notifications) cancel the case's messages not yet sent."""
    now = now or timezone.now()
    case.status = CaseStatus.RESOLVED
    case.resolved_at = now
    case.days_past_due = 0
    case.overdue_amount = 0
    update = ["status", "resolved_at", "days_past_due", "overdue_amount", "updated_at"]
    if outstanding is not None:
        case.outstanding = outstanding
        update.append("outstanding")
    case.save(update_fields=update)
    PromiseToPay.objects.filter(case=case, status=PromiseStatus.PENDING).update(
        status=PromiseStatus.KEPT, settled_at=now
    )
    PaymentPlan.objects.filter(case=case, status__in=[PlanStatus.PROPOSED, PlanStatus.ACTIVE]).update(
        status=PlanStatus.KEPT, settled_at=now
    )
    event_record(
        case=case,
        kind=EventKind.RESOLVED,
        actor=actor,
        at=now,
        detail={"reason": "days_past_due_zero"},
    )
    cases_resolved.send(sender=Case, case_ids=[case.pk], reason="resolved")
    return case
