"""Rules held by PostgreSQL itself, whatever code writes the rows."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from cases.models import Borrower, Case, CaseEvent, CaseStatus, Installment, Loan, Payment
from cases.models.cases import AppendOnlyError
from tests.factories import BorrowerFactory, CaseFactory, LoanFactory, loan_with_schedule

pytestmark = pytest.mark.django_db


def refused(callable_):
    with pytest.raises(IntegrityError), transaction.atomic():
        callable_()


def test_external_ids_are_unique():
    borrower = BorrowerFactory(external_id="B1")
    refused(lambda: Borrower.objects.bulk_create([Borrower(external_id="B1", name="x", phone="+8613800000000")]))
    LoanFactory(external_id="L1", borrower=borrower)
    refused(
        lambda: Loan.objects.bulk_create(
            [Loan(external_id="L1", borrower=borrower, principal=1, currency="CNY", disbursed_on=dt.date(2026, 1, 1))]
        )
    )


def test_payment_external_ids_are_unique():
    loan = loan_with_schedule([dt.date(2026, 3, 1)])
    now = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    Payment.objects.create(external_id="P1", loan=loan, amount=Decimal("1"), paid_at=now)
    refused(lambda: Payment.objects.create(external_id="P1", loan=loan, amount=Decimal("2"), paid_at=now))


def test_amounts_cannot_be_negative():
    loan = loan_with_schedule([dt.date(2026, 3, 1)])
    refused(lambda: Installment.objects.filter(loan=loan).update(amount=Decimal("-1")))
    refused(lambda: Loan.objects.filter(pk=loan.pk).update(principal=Decimal("-0.01")))
    refused(
        lambda: Payment.objects.create(
            external_id="P0", loan=loan, amount=Decimal("0"), paid_at=dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
        )
    )
    refused(lambda: CaseFactory(loan=loan, outstanding=Decimal("-5")))


def test_an_installment_cannot_be_paid_beyond_its_amount():
    loan = loan_with_schedule([dt.date(2026, 3, 1)])
    refused(lambda: Installment.objects.filter(loan=loan).update(paid_amount=Decimal("1000.01")))


def test_a_loan_has_at_most_one_open_case():
    case = CaseFactory()
    for status in (CaseStatus.OPEN, CaseStatus.ON_HOLD, CaseStatus.AWAITING_APPROVAL):
        refused(lambda status=status: CaseFactory(loan=case.loan, status=status))
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.RESOLVED)
    CaseFactory(loan=case.loan)  # a later overdue episode opens a new case
    assert Case.objects.filter(loan=case.loan).count() == 2


def test_case_events_cannot_be_updated_or_deleted_by_the_model():
    event = CaseEvent.objects.create(case=CaseFactory(), kind="note", detail={"text": "called"})
    event.detail = {"text": "rewritten"}
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        CaseEvent.objects.filter(pk=event.pk).update(kind="opened")
    with pytest.raises(AppendOnlyError):
        CaseEvent.objects.filter(pk=event.pk).delete()


def test_case_events_cannot_be_updated_or_deleted_even_with_raw_sql():
    event = CaseEvent.objects.create(case=CaseFactory(), kind="note", detail={"text": "called"})
    for sql in (
        "UPDATE cases_caseevent SET kind = 'opened' WHERE id = %s",
        "DELETE FROM cases_caseevent WHERE id = %s",
    ):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert CaseEvent.objects.get(pk=event.pk).kind == "note"


def test_a_case_with_events_cannot_be_deleted():
    case = CaseFactory()
    CaseEvent.objects.create(case=case, kind="opened")
    with pytest.raises(ProtectedError):
        case.delete()
    assert Case.objects.filter(pk=case.pk).exists()
