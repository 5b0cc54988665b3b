"""POST /api/v1/payments/: idempotent by external_id, allocation, case re-evaluation."""

import datetime as dt

import pytest

from cases.models import CaseStatus, Installment, Payment
from tests.api.conftest import make_case, token_client
from tests.factories import UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db
URL = "/api/v1/payments/"
NOW = dt.datetime(2026, 2, 15, 4, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def lender(integration):
    return token_client(integration)


@pytest.fixture
def loan():
    return loan_with_schedule([dt.date(2026, 1, 5), dt.date(2026, 2, 5)], external_id="L-PAY-1")


def payment(**changes):
    return {"external_id": "P-1", "loan": "L-PAY-1", "amount": "1200.00", "paid_at": "2026-02-10T14:30:00+08:00"} | (
        changes
    )


def test_it_records_and_allocates_oldest_installment_first(lender, loan):
    response = lender.post(URL, payment(), format="json")

    assert response.status_code == 201, response.json()
    assert response.json() == {
        "external_id": "P-1",
        "loan": "L-PAY-1",
        "amount": "1200.00",
        "paid_at": "2026-02-10T14:30:00+08:00",
        "unallocated": "0.00",
        "recorded_at": response.json()["recorded_at"],
    }
    assert list(Installment.objects.filter(loan=loan).order_by("sequence").values_list("paid_amount", flat=True)) == [
        1000,
        200,
    ]


def test_the_same_external_id_and_body_answers_200_with_the_original_and_credits_once(lender, loan):
    first = lender.post(URL, payment(), format="json")
    again = lender.post(URL, payment(paid_at="2026-02-10T06:30:00Z"), format="json")  # the same instant

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["recorded_at"] == first.json()["recorded_at"]
    assert Payment.objects.count() == 1
    assert sum(Installment.objects.filter(loan=loan).values_list("paid_amount", flat=True)) == 1200


def test_the_same_external_id_with_another_body_is_a_conflict(lender, loan):
    lender.post(URL, payment(), format="json")
    response = lender.post(URL, payment(amount="1300.00"), format="json")

    assert response.status_code == 409
    assert "different amount" in response.json()["detail"]
    assert "new external_id" in response.json()["detail"]
    assert Payment.objects.get().amount == 1200


def test_a_full_payment_resolves_the_case_at_once(lender):
    case = make_case(dpd=41)
    response = lender.post(
        URL, payment(loan=case.loan.external_id, amount="1000.00", paid_at="2026-02-15T09:00:00+08:00"), format="json"
    )

    assert response.status_code == 201
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"external_id": ""}, "external_id", "blank"),
        ({"loan": "NOPE"}, "loan", "No loan with external id NOPE"),
        ({"amount": 10.5}, "amount", "decimal strings"),
        ({"amount": "0"}, "amount", "0.01"),
        ({"amount": "-5"}, "amount", "0.01"),
        ({"amount": "1.234"}, "amount", "2 decimal places"),
        ({"paid_at": "yesterday"}, "paid_at", "format"),
        ({"paid_at": "2026-03-01T10:00:00+08:00"}, "paid_at", "future"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(lender, loan, changes, field, fragment):
    response = lender.post(URL, payment(**changes), format="json")

    assert response.status_code == 400, response.json()
    assert any(fragment.lower() in message.lower() for message in response.json()[field]), response.json()
    assert not Payment.objects.exists()
    assert not Installment.objects.filter(paid_amount__gt=0).exists()


@pytest.mark.parametrize("role", ["collector", "supervisor", "legal"])
def test_other_roles_may_not_record_payments(loan, role):
    response = token_client(UserFactory(username=f"p-{role}", role=role)).post(URL, payment(), format="json")

    assert response.status_code == 403
    assert not Payment.objects.exists()
