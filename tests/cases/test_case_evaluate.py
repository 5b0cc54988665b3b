"""case_evaluate_loan: CONTRACT section 4 applied to one loan."""

import datetime as dt

import pytest

from cases.actions import register_stage_action, unregister_stage_action
from cases.models import Case, CaseEvent, CaseStatus, EventKind, Hold, HoldReason, Installment
from cases.services import case_evaluate_loan, payment_record
from tests.factories import loan_with_schedule

pytestmark = pytest.mark.django_db
DUE = dt.date(2026, 3, 1)


def at_dpd(days: int) -> dt.date:
    return DUE + dt.timedelta(days=days)


@pytest.fixture
def loan():
    return loan_with_schedule([DUE])


@pytest.mark.parametrize(
    ("dpd", "stage", "status", "pending"),
    [
        (0, None, None, None),
        (1, "warning", CaseStatus.OPEN, None),
        (3, "warning", CaseStatus.OPEN, None),
        (4, "reminder", CaseStatus.OPEN, None),
        (8, "phone", CaseStatus.OPEN, None),
        (31, "third_party", CaseStatus.OPEN, None),
        (90, "third_party", CaseStatus.OPEN, None),
        (91, "third_party", CaseStatus.AWAITING_APPROVAL, "litigation"),
        (200, "third_party", CaseStatus.AWAITING_APPROVAL, "litigation"),
    ],
)
def test_it_places_a_first_seen_loan_by_its_dpd(loan, dpd, stage, status, pending):
    case = case_evaluate_loan(loan=loan, as_of=at_dpd(dpd))
    if stage is None:
        assert case is None
        assert not Case.objects.exists()
        return
    assert case.stage.code == stage
    assert case.status == status
    assert (case.pending_stage.code if case.pending_stage else None) == pending
    assert case.days_past_due == dpd


def test_a_loan_first_seen_at_dpd_50_enters_third_party_directly_and_runs_only_its_actions(loan):
    received = []

    def handler(entries, action):
        received.extend((action, e.stage_code, e.previous_stage_code) for e in entries)

    for action in ("sms", "email", "place_agency"):
        register_stage_action(action)(handler)
    try:
        case = case_evaluate_loan(loan=loan, as_of=at_dpd(50))
    finally:
        for action in ("sms", "email", "place_agency"):
            unregister_stage_action(action, handler)

    assert received == [("place_agency", "third_party", None), ("email", "third_party", None)]
    changes = CaseEvent.objects.filter(case=case, kind=EventKind.STAGE_CHANGED)
    assert [e.detail["to"] for e in changes] == ["third_party"]


def test_evaluating_twice_changes_nothing(loan):
    case_evaluate_loan(loan=loan, as_of=at_dpd(10))
    events = CaseEvent.objects.count()
    before = Case.objects.values().get()

    case_evaluate_loan(loan=loan, as_of=at_dpd(10))

    assert CaseEvent.objects.count() == events
    after = Case.objects.values().get()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


def test_it_moves_forward_through_the_stages_one_event_each(loan):
    for dpd in (1, 5, 9, 9, 40):
        case_evaluate_loan(loan=loan, as_of=at_dpd(dpd))
    case = Case.objects.get()
    path = [(e.detail["from"], e.detail["to"]) for e in case.events.filter(kind=EventKind.STAGE_CHANGED)]
    assert path == [(None, "warning"), ("warning", "reminder"), ("reminder", "phone"), ("phone", "third_party")]


def test_a_held_case_does_not_move_until_the_hold_ends(loan):
    case = case_evaluate_loan(loan=loan, as_of=at_dpd(2))
    Hold.objects.create(case=case, reason=HoldReason.DISPUTE, ends_on=at_dpd(20))

    case = case_evaluate_loan(loan=loan, as_of=at_dpd(10))
    assert case.stage.code == "warning"
    assert case.status == CaseStatus.ON_HOLD

    case = case_evaluate_loan(loan=loan, as_of=at_dpd(21))
    assert case.status == CaseStatus.OPEN
    assert case.stage.code == "phone"


def test_a_later_missed_installment_opens_a_new_case():
    loan = loan_with_schedule([DUE, DUE + dt.timedelta(days=31)])
    first = case_evaluate_loan(loan=loan, as_of=at_dpd(5))
    payment_record(external_id="P1", loan=loan.external_id, amount="1000.00", paid_at="2026-03-06T10:00:00+08:00")
    case_evaluate_loan(loan=loan, as_of=at_dpd(6))
    first.refresh_from_db()
    assert first.status == CaseStatus.RESOLVED

    second = case_evaluate_loan(loan=loan, as_of=at_dpd(33))

    assert second.pk != first.pk
    assert second.days_past_due == 2
    assert Case.objects.filter(loan=loan).count() == 2


def test_a_loan_with_nothing_due_gets_no_case():
    loan = loan_with_schedule([dt.date(2099, 1, 1)])
    Installment.objects.filter(loan=loan).update(paid_amount=0)
    assert case_evaluate_loan(loan=loan, as_of=dt.date(2026, 3, 1)) is None
