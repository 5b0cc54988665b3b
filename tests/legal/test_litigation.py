"""Entering litigation: supervisor approval with four eyes, the limitation check, the legal
matter and its demand letter (律师函) opened on approval."""

import datetime as dt
import hashlib
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from cases.exceptions import PermissionDenied
from cases.models import CaseEvent, CaseStatus
from cases.services import case_evaluate_loan, payment_record
from cases.services.approvals import case_approve_escalation, case_request_escalation
from legal import events
from legal.limitation import case_limitation
from legal.models import DocumentKind, LegalDocument, LegalMatter, MatterStatus, Placement, RecallReason
from tests.factories import loan_with_schedule

from .conftest import DUE, SHANGHAI, make_agency, third_party_case

pytestmark = pytest.mark.django_db
APPROVED_AT = dt.datetime(2026, 4, 10, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def waiting_case(db):
    """A case the sweep brought to the litigation gate (95 days late), placed with an agency."""
    make_agency("A")
    case = third_party_case()
    case = case_evaluate_loan(loan=case.loan, as_of=DUE + dt.timedelta(days=95))
    assert case.status == CaseStatus.AWAITING_APPROVAL
    assert case.pending_stage.code == "litigation"
    return case


def test_supervisor_approval_opens_a_matter_with_a_demand_letter_and_recalls_the_agency(waiting_case, supervisor):
    case = case_approve_escalation(case_id=waiting_case.pk, approver=supervisor, now=APPROVED_AT)

    assert case.stage.code == "litigation"
    matter = LegalMatter.objects.get(case=case)
    assert matter.status == MatterStatus.APPROVED
    assert matter.opened_by == supervisor
    assert matter.amount_claimed == Decimal("1000.00")
    letter = LegalDocument.objects.get(matter=matter, kind=DocumentKind.DEMAND_LETTER)
    with letter.file.open("rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == letter.sha256
    assert letter.language == "zh-hans"
    kinds = set(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))
    assert {events.MATTER_OPENED, events.DEMAND_LETTER, events.RECALLED} <= kinds
    placement = Placement.objects.get(case=case)
    assert placement.recall_reason == RecallReason.LITIGATION


def test_four_eyes_the_requester_cannot_approve_and_another_supervisor_can(supervisor, other_supervisor, legal_user):
    make_agency("A")
    case = third_party_case()
    case_request_escalation(case_id=case.pk, stage_code="litigation", requested_by=supervisor, note="assets found")

    with pytest.raises(PermissionDenied, match="Four eyes"):
        case_approve_escalation(case_id=case.pk, approver=supervisor, now=APPROVED_AT)
    with pytest.raises(PermissionDenied):
        case_approve_escalation(case_id=case.pk, approver=legal_user, now=APPROVED_AT)
    assert not LegalMatter.objects.exists()

    case_approve_escalation(case_id=case.pk, approver=other_supervisor, now=APPROVED_AT)
    assert LegalMatter.objects.filter(case=case, status=MatterStatus.APPROVED).count() == 1


def test_a_time_barred_case_cannot_enter_litigation_and_the_refusal_says_why(supervisor):
    # Last due date 1 January 2023: the three years ran out on 1 January 2026.
    loan = loan_with_schedule([dt.date(2023, 1, 1)])
    case = case_evaluate_loan(loan=loan, as_of=dt.date(2026, 4, 10))
    assert case.status == CaseStatus.AWAITING_APPROVAL

    with pytest.raises(ValidationError) as refused:
        case_approve_escalation(case_id=case.pk, approver=supervisor, now=APPROVED_AT)
    message = " ".join(refused.value.message_dict["stage"])
    assert "Time-barred" in message and "2023-01-01" in message and "2026-01-01" in message
    case.refresh_from_db()
    assert case.status == CaseStatus.AWAITING_APPROVAL
    assert case.stage.code == "third_party"
    assert not LegalMatter.objects.exists()
    assert not CaseEvent.objects.filter(case=case, kind="approved").exists()


def test_a_request_for_a_time_barred_case_is_refused_too(supervisor):
    loan = loan_with_schedule([dt.date(2023, 1, 1)])
    case = case_evaluate_loan(loan=loan, as_of=dt.date(2023, 2, 10))
    with pytest.raises(ValidationError, match="Time-barred"):
        case_request_escalation(case_id=case.pk, stage_code="litigation", requested_by=supervisor)
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN


def test_a_payment_restarts_the_limitation_period():
    loan = loan_with_schedule([dt.date(2023, 1, 1), dt.date(2023, 2, 1)])
    case = case_evaluate_loan(loan=loan, as_of=dt.date(2023, 3, 1))
    payment_record(
        external_id="P-late",
        loan=loan.external_id,
        amount="100.00",
        paid_at=dt.datetime(2024, 6, 30, 12, tzinfo=SHANGHAI),
    )
    limitation = case_limitation(case_id=case.pk, as_of=dt.date(2026, 4, 10))
    assert limitation.runs_from == dt.date(2024, 6, 30)
    assert limitation.expires_on == dt.date(2027, 6, 30)
    assert limitation.time_barred is False
    assert case_limitation(case_id=case.pk, as_of=dt.date(2027, 6, 30)).time_barred is True


def test_the_limitation_period_is_a_setting(settings, supervisor):
    settings.LIMITATION_PERIOD_YEARS = 5
    loan = loan_with_schedule([dt.date(2023, 1, 1)])
    case = case_evaluate_loan(loan=loan, as_of=dt.date(2026, 4, 10))
    case_approve_escalation(case_id=case.pk, approver=supervisor, now=APPROVED_AT)
    assert LegalMatter.objects.filter(case=case).exists()


def test_approving_a_case_again_later_opens_no_second_matter_or_letter(waiting_case, supervisor):
    case_approve_escalation(case_id=waiting_case.pk, approver=supervisor, now=APPROVED_AT)
    from cases.actions import StageEntry
    from legal.handlers import demand_letter, open_legal_matter

    entry = StageEntry(
        case_id=waiting_case.pk,
        loan_id=waiting_case.loan_id,
        stage_id=waiting_case.pending_stage_id,
        stage_code="litigation",
        previous_stage_code="third_party",
        entered_at=APPROVED_AT,
    )
    open_legal_matter([entry], "open_legal_matter")
    demand_letter([entry], "demand_letter")
    assert LegalMatter.objects.count() == 1
    assert LegalDocument.objects.count() == 1
