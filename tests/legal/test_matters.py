"""Legal matter transitions: each step with its event, refusal of invalid moves and bad
input with a message naming the field (nothing stored), and the roles that may move them."""

import datetime as dt
import subprocess
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from cases.exceptions import ConflictError, PermissionDenied
from cases.models import CaseEvent
from cases.services.approvals import case_approve_escalation
from legal import events
from legal.models import Hearing, LegalDocument, LegalMatter, MatterStatus
from legal.services.matters import (
    matter_close,
    matter_file,
    matter_mark_letter_sent,
    matter_record_judgment,
    matter_schedule_hearing,
    matter_start_enforcement,
)
from tests.factories import BorrowerFactory, UserFactory

from .conftest import DUE, SHANGHAI, third_party_case

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 4, 10, 10, 0, tzinfo=SHANGHAI)


def open_matter(approver, **loan_kwargs) -> LegalMatter:
    case = third_party_case(**loan_kwargs)
    from cases.services.approvals import case_request_escalation

    case_request_escalation(case_id=case.pk, stage_code="litigation", requested_by=UserFactory(username="req"))
    case_approve_escalation(case_id=case.pk, approver=approver, now=NOW)
    return LegalMatter.objects.get(case=case)


@pytest.fixture
def matter(supervisor):
    return open_matter(supervisor)


def status_events(matter):
    return list(
        CaseEvent.objects.filter(case_id=matter.case_id, kind=events.MATTER_STATUS)
        .order_by("pk")
        .values_list("detail", flat=True)
    )


def test_each_step_from_approval_to_closing(matter, legal_user):
    matter_mark_letter_sent(matter_id=matter.pk, user=legal_user, now=NOW)
    matter_file(
        matter_id=matter.pk,
        user=legal_user,
        court="上海市浦东新区人民法院",
        court_case_number="(2026)沪0115民初1234号",
        filed_on=dt.date(2026, 4, 20),
        law_firm="金杜律师事务所",
        lawyer="李律师",
        now=NOW + dt.timedelta(days=10),
    )
    hearing_at = dt.datetime(2026, 6, 1, 9, 30, tzinfo=SHANGHAI)
    matter_schedule_hearing(matter_id=matter.pk, user=legal_user, at=hearing_at, location="第3法庭", now=NOW)
    # An adjourned hearing adds a date without a status change.
    matter_schedule_hearing(matter_id=matter.pk, user=legal_user, at=hearing_at + dt.timedelta(days=14), now=NOW)
    matter_record_judgment(
        matter_id=matter.pk,
        user=legal_user,
        judgment_amount="1080.00",
        judgment_on=dt.date(2026, 6, 15),
        costs="250.50",
        now=dt.datetime(2026, 6, 16, tzinfo=SHANGHAI),
    )
    matter_start_enforcement(matter_id=matter.pk, user=legal_user)
    matter_close(matter_id=matter.pk, user=legal_user, note="paid in full after enforcement")

    matter.refresh_from_db()
    assert matter.status == MatterStatus.CLOSED
    assert (matter.court_case_number, matter.filed_on) == ("(2026)沪0115民初1234号", dt.date(2026, 4, 20))
    assert (matter.judgment_amount, matter.costs) == (Decimal("1080.00"), Decimal("250.50"))
    assert matter.law_firm == "金杜律师事务所"
    assert Hearing.objects.filter(matter=matter).count() == 2
    steps = [(d["from"], d["to"]) for d in status_events(matter)]
    assert steps == [
        ("approved", "letter_sent"),
        ("letter_sent", "filed"),
        ("filed", "hearing_scheduled"),
        ("hearing_scheduled", "hearing_scheduled"),
        ("hearing_scheduled", "judgment"),
        ("judgment", "enforcement"),
        ("enforcement", "closed"),
    ]
    assert CaseEvent.objects.filter(case_id=matter.case_id, kind=events.MATTER_STATUS, actor=legal_user).count() == 7


def test_skipping_a_step_is_refused_with_a_clear_message(matter, legal_user):
    with pytest.raises(ConflictError) as refused:
        matter_file(
            matter_id=matter.pk, user=legal_user, court="某法院", court_case_number="X-1", filed_on=dt.date(2026, 4, 1)
        )
    assert "“Approved” cannot move to “Filed with the court”" in refused.value.message
    assert "Demand letter sent" in refused.value.message
    with pytest.raises(ConflictError, match="cannot move to"):
        matter_start_enforcement(matter_id=matter.pk, user=legal_user)
    matter.refresh_from_db()
    assert matter.status == MatterStatus.APPROVED
    assert status_events(matter) == []


def test_a_closed_matter_moves_nowhere(matter, supervisor):
    matter_close(matter_id=matter.pk, user=supervisor, note="settled")
    with pytest.raises(ConflictError, match="allowed next: none"):
        matter_mark_letter_sent(matter_id=matter.pk, user=supervisor)
    with pytest.raises(ConflictError):
        matter_close(matter_id=matter.pk, user=supervisor, note="again")


def test_bad_input_names_the_field_and_stores_nothing(matter, legal_user):
    matter_mark_letter_sent(matter_id=matter.pk, user=legal_user)
    with pytest.raises(ValidationError) as bad:
        matter_file(
            matter_id=matter.pk, user=legal_user, court=" ", court_case_number="", filed_on=dt.date(2099, 1, 1), now=NOW
        )
    assert set(bad.value.message_dict) == {"court", "court_case_number", "filed_on"}
    assert "future" in bad.value.message_dict["filed_on"][0]
    matter.refresh_from_db()
    assert (matter.status, matter.court) == (MatterStatus.LETTER_SENT, "")

    matter_file(
        matter_id=matter.pk, user=legal_user, court="C", court_case_number="N", filed_on=dt.date(2026, 4, 9), now=NOW
    )
    with pytest.raises(ValidationError) as bad:
        matter_schedule_hearing(matter_id=matter.pk, user=legal_user, at=None)
    assert list(bad.value.message_dict) == ["at"]
    matter_schedule_hearing(matter_id=matter.pk, user=legal_user, at=NOW + dt.timedelta(days=30))
    with pytest.raises(ValidationError) as bad:
        matter_record_judgment(
            matter_id=matter.pk, user=legal_user, judgment_amount="12abc", judgment_on=None, costs="-5", now=NOW
        )
    assert set(bad.value.message_dict) == {"judgment_amount", "judgment_on", "costs"}
    with pytest.raises(ValidationError) as bad:
        matter_close(matter_id=matter.pk, user=legal_user, note="  ")
    assert list(bad.value.message_dict) == ["note"]
    matter.refresh_from_db()
    assert matter.status == MatterStatus.HEARING_SCHEDULED
    assert matter.judgment_amount is None


@pytest.mark.parametrize("role", ["collector", "agency", None])
def test_only_legal_staff_and_supervisors_move_matters(matter, role):
    user = UserFactory(username="someone", role=role)
    with pytest.raises(PermissionDenied):
        matter_mark_letter_sent(matter_id=matter.pk, user=user)
    matter.refresh_from_db()
    assert matter.status == MatterStatus.APPROVED


def test_letter_sent_needs_a_letter(matter, legal_user):
    LegalDocument.objects.filter(matter=matter).delete()
    with pytest.raises(ConflictError, match="Generate the demand letter"):
        matter_mark_letter_sent(matter_id=matter.pk, user=legal_user)


def pdf_text(document: LegalDocument) -> str:
    result = subprocess.run(
        ["pdftotext", "-layout", document.file.path, "-"], capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("zh-hans", ["律师函", "逾期天数", "未偿还总额", "2026年4月25日"]),
        ("en", ["DEMAND LETTER", "Days past due", "Total outstanding", "25 April 2026"]),
    ],
)
def test_the_demand_letter_reads_back_in_the_borrowers_language(supervisor, language, expected):
    borrower = BorrowerFactory(name="王小明", language=language, national_id="110101199003074512")
    matter = open_matter(supervisor, amount="4321.98", due_dates=[DUE, DUE + dt.timedelta(days=30)], borrower=borrower)
    letter = LegalDocument.objects.get(matter=matter)
    assert letter.language == language

    text = pdf_text(letter)
    assert "王小明" in text
    assert "8643.96" in text  # outstanding: both installments
    assert "4321.98" in text  # the installment table
    assert matter.case.loan.external_id in text
    assert "110101199003074512" not in text  # the national id is masked
    for phrase in expected:  # the deadline is 15 days after the letter's date
        assert phrase in text
