"""payment_record: allocation oldest first, idempotency by external id, bad input, the case at once."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from cases.exceptions import PaymentConflict
from cases.models import CaseEvent, CaseStatus, EventKind, Installment, Payment, PaymentAllocation
from cases.services import case_evaluate_loan, payment_record
from tests.factories import loan_with_schedule

D = dt.date
PAID_AT = "2026-03-20T09:15:00+08:00"


@pytest.fixture
def loan(db):
    return loan_with_schedule([D(2026, 3, 1), D(2026, 4, 1), D(2026, 5, 1)])


def paid_amounts(loan):
    return [i.paid_amount for i in Installment.objects.filter(loan=loan).order_by("due_date")]


def test_it_allocates_oldest_installment_first(loan):
    result = payment_record(external_id="P1", loan=loan.external_id, amount="1500.00", paid_at=PAID_AT)

    assert result.created is True
    assert paid_amounts(loan) == [Decimal("1000.00"), Decimal("500.00"), Decimal("0.00")]
    assert [
        (a.installment.due_date, a.amount) for a in PaymentAllocation.objects.order_by("installment__due_date")
    ] == [
        (D(2026, 3, 1), Decimal("1000.00")),
        (D(2026, 4, 1), Decimal("500.00")),
    ]


def test_it_tops_up_a_partly_paid_installment_before_the_next(loan):
    payment_record(external_id="P1", loan=loan.external_id, amount="600.00", paid_at=PAID_AT)
    payment_record(external_id="P2", loan=loan.external_id, amount="600.00", paid_at=PAID_AT)
    assert paid_amounts(loan) == [Decimal("1000.00"), Decimal("200.00"), Decimal("0.00")]


def test_it_keeps_an_overpayment_as_unallocated(loan):
    result = payment_record(external_id="P1", loan=loan.external_id, amount="3200.00", paid_at=PAID_AT)
    assert paid_amounts(loan) == [Decimal("1000.00")] * 3
    assert result.payment.unallocated == Decimal("200.00")


def test_it_replays_the_same_payment_without_crediting_twice(loan):
    first = payment_record(external_id="P1", loan=loan.external_id, amount="1000.00", paid_at=PAID_AT)
    again = payment_record(external_id="P1", loan=loan.external_id, amount="1000", paid_at=PAID_AT)

    assert again.created is False
    assert again.payment.pk == first.payment.pk
    assert Payment.objects.count() == 1
    assert paid_amounts(loan) == [Decimal("1000.00"), Decimal("0.00"), Decimal("0.00")]


def test_it_refuses_the_same_external_id_with_another_body(loan):
    payment_record(external_id="P1", loan=loan.external_id, amount="1000.00", paid_at=PAID_AT)
    with pytest.raises(PaymentConflict) as excinfo:
        payment_record(external_id="P1", loan=loan.external_id, amount="999.00", paid_at=PAID_AT)
    assert "amount" in str(excinfo.value)
    assert paid_amounts(loan)[0] == Decimal("1000.00")
    assert Payment.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "overrides", "fragment"),
    [
        ("loan", {"loan": "NO-SUCH-LOAN"}, "No loan with external id NO-SUCH-LOAN"),
        ("amount", {"amount": "-10.00"}, "negative"),
        ("amount", {"amount": "0"}, "greater than zero"),
        ("amount", {"amount": 10.5}, "decimal strings"),
        ("paid_at", {"paid_at": "yesterday"}, "date and time"),
        ("paid_at", {"paid_at": "2999-01-01T00:00:00+00:00"}, "future"),
        ("external_id", {"external_id": ""}, "required"),
    ],
)
def test_it_refuses_bad_input_and_changes_nothing(loan, field, overrides, fragment):
    kwargs = {"external_id": "P1", "loan": loan.external_id, "amount": "100.00", "paid_at": PAID_AT, **overrides}
    with pytest.raises(ValidationError) as excinfo:
        payment_record(**kwargs)
    assert any(fragment in m for m in excinfo.value.message_dict[field]), excinfo.value.message_dict
    assert Payment.objects.count() == 0
    assert paid_amounts(loan) == [Decimal("0.00")] * 3


def test_it_resolves_the_case_at_once_when_dpd_returns_to_zero(loan):
    case = case_evaluate_loan(loan=loan, as_of=D(2026, 3, 10))
    assert case.status == CaseStatus.OPEN and case.days_past_due == 9

    payment_record(external_id="P1", loan=loan.external_id, amount="1000.00", paid_at=PAID_AT, as_of=D(2026, 3, 20))

    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    assert case.days_past_due == 0
    assert case.outstanding == Decimal("2000.00")
    kinds = list(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))
    assert kinds[-2:] == [EventKind.PAYMENT, EventKind.RESOLVED]


def test_a_partial_payment_lowers_dpd_but_keeps_the_case_open(loan):
    case = case_evaluate_loan(loan=loan, as_of=D(2026, 4, 10))
    assert case.days_past_due == 40

    payment_record(external_id="P1", loan=loan.external_id, amount="1000.00", paid_at=PAID_AT, as_of=D(2026, 4, 10))

    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    assert case.days_past_due == 9
    assert case.stage.code == "third_party"  # stages never move back


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_deliveries_of_one_payment_credit_once():
    loan = loan_with_schedule([D(2026, 3, 1), D(2026, 4, 1)])
    barrier = threading.Barrier(2)
    outcomes = []

    def deliver():
        try:
            barrier.wait()
            outcomes.append(
                payment_record(external_id="P-race", loan=loan.external_id, amount="700.00", paid_at=PAID_AT).created
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == [False, True]
    assert Payment.objects.count() == 1
    assert paid_amounts(loan) == [Decimal("700.00"), Decimal("0.00")]
