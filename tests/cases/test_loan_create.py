"""loan_create: the happy path and one test per bad-input rule; the database stays unchanged."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from cases.exceptions import LoanAlreadyExists
from cases.models import Borrower, Installment, Loan
from cases.services import loan_create

pytestmark = pytest.mark.django_db


def payload(**overrides):
    data = {
        "external_id": "LN-1001",
        "borrower": {
            "external_id": "BR-1",
            "name": "王芳",
            "phone": "+8613812345678",
            "email": "wangfang@example.com",
            "language": "zh-hans",
            "timezone": "Asia/Shanghai",
        },
        "principal": "3000.00",
        "currency": "CNY",
        "disbursed_on": "2026-01-05",
        "installments": [
            {"due_date": "2026-02-05", "amount": "1050.00"},
            {"due_date": "2026-03-05", "amount": "1050.00"},
            {"due_date": "2026-04-05", "amount": "1050.00"},
        ],
    }
    for key, value in overrides.items():
        if key.startswith("borrower__"):
            data["borrower"][key.removeprefix("borrower__")] = value
        else:
            data[key] = value
    return data


def counts():
    return Borrower.objects.count(), Loan.objects.count(), Installment.objects.count()


def test_it_creates_the_loan_borrower_and_installments():
    loan = loan_create(**payload())

    assert loan.borrower.name == "王芳"
    assert loan.principal == Decimal("3000.00")
    assert loan.currency == "CNY"
    assert [(i.sequence, i.due_date, i.amount) for i in loan.installments.order_by("sequence")] == [
        (1, dt.date(2026, 2, 5), Decimal("1050.00")),
        (2, dt.date(2026, 3, 5), Decimal("1050.00")),
        (3, dt.date(2026, 4, 5), Decimal("1050.00")),
    ]


def test_it_matches_the_borrower_by_external_id_and_updates_details():
    first = loan_create(**payload())
    second = loan_create(**payload(external_id="LN-1002", borrower__phone="+8613900000001"))

    assert first.borrower_id == second.borrower_id
    assert Borrower.objects.count() == 1
    assert Borrower.objects.get().phone == "+8613900000001"


def test_it_normalises_language_and_currency_case():
    loan = loan_create(**payload(currency="cny", borrower__language="zh-CN"))
    assert loan.currency == "CNY"
    assert loan.borrower.language == "zh-hans"


def assert_refused(field: str, fragment: str, **overrides):
    before = counts()
    with pytest.raises(ValidationError) as excinfo:
        loan_create(**payload(**overrides))
    errors = excinfo.value.message_dict
    assert field in errors, errors
    assert any(fragment in message for message in errors[field]), errors[field]
    assert counts() == before


def test_it_refuses_a_malformed_phone():
    assert_refused("borrower.phone", "E.164", borrower__phone="13812345678")


def test_it_refuses_an_invalid_phone_number():
    assert_refused("borrower.phone", "not a valid phone number", borrower__phone="+86123")


def test_it_refuses_an_unknown_time_zone():
    assert_refused("borrower.timezone", "IANA", borrower__timezone="Asia/Beijing")


def test_it_refuses_an_unknown_currency():
    assert_refused("currency", "ISO 4217", currency="RMB")


def test_it_refuses_a_negative_principal():
    assert_refused("principal", "negative", principal="-1.00")


def test_it_refuses_a_negative_installment_amount():
    installments = payload()["installments"]
    installments[1]["amount"] = "-5"
    assert_refused("installments[1].amount", "negative", installments=installments)


def test_it_refuses_a_float_amount():
    assert_refused("principal", "decimal strings", principal=3000.1)


def test_it_refuses_more_than_two_decimal_places():
    assert_refused("principal", "two decimal places", principal="10.001")


def test_it_refuses_installments_out_of_date_order():
    installments = payload()["installments"]
    installments[1]["due_date"], installments[2]["due_date"] = "2026-04-05", "2026-03-05"
    assert_refused("installments[2].due_date", "date order", installments=installments)


def test_it_refuses_an_installment_due_before_disbursement():
    installments = payload()["installments"]
    installments[0]["due_date"] = "2025-12-31"
    assert_refused("installments[0].due_date", "before the disbursement date", installments=installments)


def test_it_refuses_a_loan_without_installments():
    assert_refused("installments", "at least one installment", installments=[])


def test_it_refuses_an_unknown_language():
    assert_refused("borrower.language", "en or zh-hans", borrower__language="fr")


def test_it_refuses_a_bad_date():
    assert_refused("disbursed_on", "YYYY-MM-DD", disbursed_on="05/01/2026")


def test_it_names_every_bad_field_at_once():
    with pytest.raises(ValidationError) as excinfo:
        loan_create(**payload(currency="XXXX", principal="abc", borrower__phone="123"))
    assert {"currency", "principal", "borrower.phone"} <= set(excinfo.value.message_dict)


def test_it_refuses_a_duplicate_external_id_and_changes_nothing():
    loan_create(**payload())
    before = counts()
    with pytest.raises(LoanAlreadyExists) as excinfo:
        loan_create(**payload(borrower__name="Someone Else"))
    assert "LN-1001" in str(excinfo.value)
    assert counts() == before
    assert Borrower.objects.get().name == "王芳"
