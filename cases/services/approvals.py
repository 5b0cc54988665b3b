"""Supervisor approval of a stage that requires it (CONTRACT section 4, four eyes)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from cases.actions import StageEntry, check_stage_guards, run_stage_actions
from cases.exceptions import ConflictError, PermissionDenied
from cases.models import Case, CaseStatus, EventKind, Stage
from cases.selectors import business_date

from .events import event_record

APPROVE_PERMISSION = "cases.approve_escalation"
# After a refusal the sweep leaves the case in its stage this long before asking again.
DEFAULT_SNOOZE_DAYS = 30


def _check_approver(user) -> None:
    if user is None or not user.is_authenticated or not user.is_active:
        raise PermissionDenied("Log in as a supervisor to approve escalations.")
    if not user.has_perm(APPROVE_PERMISSION):
        raise PermissionDenied("Only supervisors may approve or decline an escalation.")


def _locked_waiting_case(case_id: int) -> Case:
    case = Case.objects.select_for_update(of=("self",)).select_related("pending_stage", "stage").get(pk=case_id)
    if case.status != CaseStatus.AWAITING_APPROVAL or case.pending_stage_id is None:
        raise ConflictError(f"Case {case_id} is not waiting for approval (its status is {case.status}).")
    return case


@transaction.atomic
def case_request_escalation(*, case_id: int, stage_code: str, requested_by, note: str = "") -> Case:
    """A person asks for a case to enter a stage that requires approval, e.g. litigation.

    The request waits for a supervisor other than the requester.
    """
    if requested_by is None or not requested_by.is_authenticated:
        raise PermissionDenied("Log in to request an escalation.")
    stage = Stage.objects.filter(code=stage_code, active=True, requires_approval=True).first()
    if stage is None:
        raise ConflictError(f"{stage_code} is not an active stage that requires approval.")
    case = Case.objects.select_for_update(of=("self",)).select_related("stage").get(pk=case_id)
    if case.status != CaseStatus.OPEN:
        raise ConflictError(f"Case {case_id} cannot be escalated while its status is {case.status}.")
    if case.stage is not None and case.stage.order >= stage.order:
        raise ConflictError(f"Case {case_id} is already at or beyond {stage.code}.")
    now = timezone.now()
    # Other apps' conditions on the stage (legal's limitation period) refuse with a reason.
    check_stage_guards(stage.code, case, as_of=business_date(now))
    case.pending_stage = stage
    case.status = CaseStatus.AWAITING_APPROVAL
    case.approval_requested_by = requested_by
    case.approval_requested_at = now
    case.save(update_fields=["pending_stage", "status", "approval_requested_by", "approval_requested_at", "updated_at"])
    event_record(
        case=case,
        kind=EventKind.AWAITING_APPROVAL,
        actor=requested_by,
        at=now,
        detail={"stage": stage.code, "note": note},
    )
    return case


@transaction.atomic
def case_approve_escalation(*, case_id: int, approver, note: str = "", now: dt.datetime | None = None) -> Case:
    """Approve the pending stage: the case enters it at once and the stage's actions run."""
    _check_approver(approver)
    case = _locked_waiting_case(case_id)
    if case.approval_requested_by_id is not None and case.approval_requested_by_id == approver.pk:
        raise PermissionDenied("Four eyes: another supervisor must approve an escalation you requested.")
    now = now or timezone.now()
    previous, stage = case.stage, case.pending_stage
    # Other apps' conditions on the stage (legal's limitation period) refuse with a reason.
    check_stage_guards(stage.code, case, as_of=business_date(now))
    case.stage = stage
    case.pending_stage = None
    case.status = CaseStatus.OPEN
    case.stage_entered_at = now
    case.stage_entered_on = business_date(now)
    case.repeat_count = 0
    case.save(
        update_fields=[
            "stage",
            "pending_stage",
            "status",
            "stage_entered_at",
            "stage_entered_on",
            "repeat_count",
            "updated_at",
        ]
    )
    event_record(
        case=case,
        kind=EventKind.APPROVED,
        actor=approver,
        at=now,
        detail={"stage": stage.code, "note": note, "requested_by": case.approval_requested_by_id},
    )
    event_record(
        case=case,
        kind=EventKind.STAGE_CHANGED,
        actor=approver,
        at=now,
        detail={"from": previous.code if previous else None, "to": stage.code, "days_past_due": case.days_past_due},
    )
    entry = StageEntry(
        case_id=case.pk,
        loan_id=case.loan_id,
        stage_id=stage.pk,
        stage_code=stage.code,
        previous_stage_code=previous.code if previous else None,
        entered_at=now,
        actor_id=approver.pk,
        entered_on=case.stage_entered_on,
    )
    run_stage_actions([entry], {stage.pk: list(stage.entry_actions)})
    return case


@transaction.atomic
def case_decline_escalation(
    *, case_id: int, approver, reason: str, snooze_days: int = DEFAULT_SNOOZE_DAYS, now: dt.datetime | None = None
) -> Case:
    """Decline the pending stage: the case stays where it is and is not proposed again for a while."""
    _check_approver(approver)
    if not reason.strip():
        raise ConflictError("Say why the escalation is declined.")
    case = _locked_waiting_case(case_id)
    now = now or timezone.now()
    stage = case.pending_stage
    case.pending_stage = None
    case.status = CaseStatus.OPEN
    case.gate_snoozed_until = business_date(now) + dt.timedelta(days=snooze_days)
    case.approval_requested_by = None
    case.approval_requested_at = None
    case.save(
        update_fields=[
            "pending_stage",
            "status",
            "gate_snoozed_until",
            "approval_requested_by",
            "approval_requested_at",
            "updated_at",
        ]
    )
    event_record(
        case=case,
        kind=EventKind.REJECTED,
        actor=approver,
        at=now,
        detail={"stage": stage.code, "reason": reason, "until": case.gate_snoozed_until.isoformat()},
    )
    return case
