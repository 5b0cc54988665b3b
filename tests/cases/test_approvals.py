"""Approval of a gated stage (litigation): supervisors only, four eyes, actions on approval."""

import datetime as dt

import pytest

from cases.actions import register_stage_action, unregister_stage_action
from cases.exceptions import ConflictError, PermissionDenied
from cases.models import CaseEvent, CaseStatus, EventKind
from cases.services import case_evaluate_loan, sweep_run
from cases.services.approvals import case_approve_escalation, case_decline_escalation, case_request_escalation
from tests.factories import UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db
DUE = dt.date(2026, 1, 1)


@pytest.fixture
def waiting_case():
    loan = loan_with_schedule([DUE])
    case = case_evaluate_loan(loan=loan, as_of=DUE + dt.timedelta(days=95))
    assert case.status == CaseStatus.AWAITING_APPROVAL
    return case


@pytest.fixture
def supervisor():
    return UserFactory(username="sup1", role="supervisor")


@pytest.fixture
def other_supervisor():
    return UserFactory(username="sup2", role="supervisor")


@pytest.fixture
def litigation_actions():
    received = []

    def handler(entries, action):
        received.extend((action, e.case_id, e.stage_code, e.actor_id) for e in entries)

    for action in ("open_legal_matter", "demand_letter"):
        register_stage_action(action)(handler)
    yield received
    for action in ("open_legal_matter", "demand_letter"):
        unregister_stage_action(action, handler)


def test_a_supervisor_approves_and_the_case_enters_litigation_with_its_actions(
    waiting_case, supervisor, litigation_actions
):
    case = case_approve_escalation(case_id=waiting_case.pk, approver=supervisor, note="documents complete")

    assert case.stage.code == "litigation"
    assert case.status == CaseStatus.OPEN
    assert case.pending_stage is None
    assert litigation_actions == [
        ("open_legal_matter", case.pk, "litigation", supervisor.pk),
        ("demand_letter", case.pk, "litigation", supervisor.pk),
    ]
    approved = CaseEvent.objects.get(case=case, kind=EventKind.APPROVED)
    assert approved.actor == supervisor
    assert approved.detail["stage"] == "litigation"


def test_a_collector_cannot_approve(waiting_case):
    collector = UserFactory(username="col1", role="collector")
    with pytest.raises(PermissionDenied):
        case_approve_escalation(case_id=waiting_case.pk, approver=collector)
    waiting_case.refresh_from_db()
    assert waiting_case.status == CaseStatus.AWAITING_APPROVAL


def test_the_requester_cannot_approve_their_own_request(supervisor, other_supervisor):
    loan = loan_with_schedule([DUE])
    case = case_evaluate_loan(loan=loan, as_of=DUE + dt.timedelta(days=40))
    case_request_escalation(case_id=case.pk, stage_code="litigation", requested_by=supervisor, note="fraud suspected")

    with pytest.raises(PermissionDenied, match="Four eyes"):
        case_approve_escalation(case_id=case.pk, approver=supervisor)

    approved = case_approve_escalation(case_id=case.pk, approver=other_supervisor)
    assert approved.stage.code == "litigation"


def test_approving_twice_is_refused_and_changes_nothing(waiting_case, supervisor, other_supervisor):
    case_approve_escalation(case_id=waiting_case.pk, approver=supervisor)
    events = CaseEvent.objects.count()
    with pytest.raises(ConflictError):
        case_approve_escalation(case_id=waiting_case.pk, approver=other_supervisor)
    assert CaseEvent.objects.count() == events


def test_a_declined_case_stays_in_its_stage_and_is_not_asked_again_for_a_while(waiting_case, supervisor):
    now = dt.datetime(2026, 4, 6, 10, tzinfo=dt.UTC)
    case = case_decline_escalation(case_id=waiting_case.pk, approver=supervisor, reason="hardship, on a plan", now=now)
    assert case.status == CaseStatus.OPEN
    assert case.stage.code == "third_party"

    sweep_run(as_of=dt.date(2026, 4, 10))
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN

    sweep_run(as_of=dt.date(2026, 5, 7))
    case.refresh_from_db()
    assert case.status == CaseStatus.AWAITING_APPROVAL
    assert case.pending_stage.code == "litigation"


def test_declining_needs_a_reason(waiting_case, supervisor):
    with pytest.raises(ConflictError, match="why"):
        case_decline_escalation(case_id=waiting_case.pk, approver=supervisor, reason="  ")
