"""Days past due and balances, CONTRACT section 4."""

import datetime as dt
from decimal import Decimal

import pytest

from cases.selectors import days_past_due, loan_balance
from cases.services import payment_record
from tests.factories import loan_with_schedule

D = dt.date
PAID_AT = "2026-03-05T10:00:00+08:00"


def test_it_counts_days_from_the_oldest_unpaid_due_date():
    assert days_past_due(D(2026, 3, 1), D(2026, 3, 1)) == 0
    assert days_past_due(D(2026, 3, 1), D(2026, 3, 2)) == 1
    assert days_past_due(D(2026, 3, 1), D(2026, 2, 1)) == 0
    assert days_past_due(None, D(2026, 3, 2)) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("label", "schedule", "payments", "as_of", "dpd", "outstanding", "overdue"),
    [
        ("not yet due", [D(2026, 3, 1)], [], D(2026, 2, 20), 0, "1000.00", "0.00"),
        ("due today", [D(2026, 3, 1)], [], D(2026, 3, 1), 0, "1000.00", "0.00"),
        ("one day late", [D(2026, 3, 1)], [], D(2026, 3, 2), 1, "1000.00", "1000.00"),
        ("partial payment", [D(2026, 3, 1)], ["400.00"], D(2026, 3, 11), 10, "600.00", "600.00"),
        (
            "several installments, oldest paid",
            [D(2026, 3, 1), D(2026, 4, 1), D(2026, 5, 1)],
            ["1000.00"],
            D(2026, 4, 15),
            14,
            "2000.00",
            "1000.00",
        ),
        (
            "several installments, none paid",
            [D(2026, 3, 1), D(2026, 4, 1), D(2026, 5, 1)],
            [],
            D(2026, 4, 15),
            45,
            "3000.00",
            "2000.00",
        ),
        ("payment after the due date", [D(2026, 3, 1)], ["1000.00"], D(2026, 3, 10), 0, "0.00", "0.00"),
        (
            "full payment of every installment",
            [D(2026, 3, 1), D(2026, 4, 1)],
            ["2000.00"],
            D(2026, 6, 1),
            0,
            "0.00",
            "0.00",
        ),
        (
            "payment spread across two installments",
            [D(2026, 3, 1), D(2026, 4, 1)],
            ["1500.00"],
            D(2026, 4, 11),
            10,
            "500.00",
            "500.00",
        ),
    ],
)
def test_it_computes_dpd_and_balances(label, schedule, payments, as_of, dpd, outstanding, overdue):
    loan = loan_with_schedule(schedule)
    for number, amount in enumerate(payments):
        payment_record(external_id=f"P-{label}-{number}", loan=loan.external_id, amount=amount, paid_at=PAID_AT)

    balance = loan_balance(loan_id=loan.pk, as_of=as_of)

    assert balance.days_past_due == dpd, label
    assert balance.outstanding == Decimal(outstanding), label
    assert balance.overdue_amount == Decimal(overdue), label
    assert isinstance(balance.outstanding, Decimal)
