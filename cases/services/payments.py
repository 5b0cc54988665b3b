from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cases import validators as v
from cases.exceptions import PaymentConflict
from cases.models import EventKind, Installment, Loan, Payment, PaymentAllocation
from cases.models.fields import ZERO
from cases.selectors import business_date, loan_live_case

from .cases import case_evaluate_loan
from .errors import FieldErrors
from .events import event_record


@dataclass(frozen=True)
class PaymentResult:
    payment: Payment
    # False when the same payment (same external id and body) was recorded before: a replay.
    created: bool


def _parse_paid_at(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        parsed = parse_datetime(str(value or "").strip()) if value else None
        if parsed is None:
            raise ValidationError("Expected a date and time such as 2026-03-01T10:30:00+08:00.")
    if timezone.is_naive(parsed):
        # A lender's system without zone information means the business time zone.
        parsed = timezone.make_aware(parsed)
    if parsed > timezone.now() + dt.timedelta(minutes=5):
        raise ValidationError("The payment time is in the future.")
    return parsed


def payment_record(
    *,
    external_id: str,
    loan: str,
    amount: Decimal | str,
    paid_at: dt.datetime | str,
    actor=None,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
) -> PaymentResult:
    """Record a payment on a loan, allocate it oldest installment first and re-evaluate the
    loan's case at once (a payment that brings days past due to 0 resolves the case).

    ``as_of`` and ``now`` (the business date and the time written on events) default to
    today and the current time; the demo passes past ones when it replays a history.

    Idempotent by ``external_id``: the same id with the same loan, amount and time returns
    the original payment (``created=False``) and credits nothing twice; the same id with a
    different body raises PaymentConflict.
    """
    errors = FieldErrors()
    payment_id = errors.parse("external_id", v.parse_text, external_id, max_length=64)
    loan_external_id = errors.parse("loan", v.parse_text, loan, max_length=64)
    amount_value = errors.parse("amount", v.parse_amount, amount)
    paid_at_value = errors.parse("paid_at", _parse_paid_at, paid_at)
    errors.raise_if_any()

    with transaction.atomic():
        # Lock the loan: payments to one loan are allocated one after another, so two
        # concurrent payments can never both take the same installment's remaining amount.
        loan_obj = Loan.objects.select_for_update().filter(external_id=loan_external_id).first()
        existing = Payment.objects.select_related("loan").filter(external_id=payment_id).first()
        if existing is not None:
            return PaymentResult(
                _same_or_conflict(existing, loan_external_id, amount_value, paid_at_value),
                False,
            )
        if loan_obj is None:
            raise ValidationError({"loan": [f"No loan with external id {loan_external_id}."]})
        try:
            with transaction.atomic():
                payment = Payment.objects.create(
                    external_id=payment_id,
                    loan=loan_obj,
                    amount=amount_value,
                    paid_at=paid_at_value,
                )
        except IntegrityError:
            # The same external id was recorded concurrently against another loan.
            existing = Payment.objects.select_related("loan").get(external_id=payment_id)
            return PaymentResult(
                _same_or_conflict(existing, loan_external_id, amount_value, paid_at_value),
                False,
            )

        allocated = _allocate(payment)
        if allocated < payment.amount:
            payment.unallocated = payment.amount - allocated
            payment.save(update_fields=["unallocated"])

        case = loan_live_case(loan_id=loan_obj.pk)
        if case is not None:
            event_record(
                case=case,
                kind=EventKind.PAYMENT,
                actor=actor,
                at=now,
                detail={
                    "payment": payment.external_id,
                    "amount": str(payment.amount),
                    "paid_at": payment.paid_at.isoformat(),
                    "unallocated": str(payment.unallocated),
                },
            )
        case_evaluate_loan(loan=loan_obj, as_of=as_of or business_date(now), actor=actor, now=now)
    return PaymentResult(payment, True)


def _same_or_conflict(existing: Payment, loan: str, amount: Decimal, paid_at: dt.datetime) -> Payment:
    differences = []
    if existing.loan.external_id != loan:
        differences.append("loan")
    if existing.amount != amount:
        differences.append("amount")
    if existing.paid_at != paid_at:
        differences.append("paid_at")
    if differences:
        raise PaymentConflict(
            f"Payment {existing.external_id} was already recorded with a different "
            f"{', '.join(differences)}; send a new external_id for a new payment.",
            field="external_id",
        )
    return existing


def _allocate(payment: Payment) -> Decimal:
    """Spread the payment over unpaid installments, oldest first. Returns the amount placed."""
    left = payment.amount
    touched: list[Installment] = []
    allocations: list[PaymentAllocation] = []
    unpaid = Installment.objects.filter(loan_id=payment.loan_id, paid_amount__lt=F("amount")).order_by("due_date")
    for installment in unpaid:
        if left <= ZERO:
            break
        room = installment.amount - installment.paid_amount
        if room <= ZERO:
            continue
        share = min(room, left)
        installment.paid_amount += share
        left -= share
        touched.append(installment)
        allocations.append(PaymentAllocation(payment=payment, installment=installment, amount=share))
    Installment.objects.bulk_update(touched, ["paid_amount"])
    PaymentAllocation.objects.bulk_create(allocations)
    return payment.amount - left
