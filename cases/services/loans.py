from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from cases import validators as v
from cases.exceptions import LoanAlreadyExists
from cases.models import Borrower, Installment, Loan

from .errors import FieldErrors

BORROWER_FIELDS = ("name", "phone", "email", "language", "timezone")


def parse_borrower(data: Mapping[str, Any], errors: FieldErrors, prefix: str = "borrower.") -> dict[str, Any]:
    """Validate a borrower's fields as a lender sends them; errors are keyed ``borrower.<field>``."""
    return {
        "external_id": errors.parse(prefix + "external_id", v.parse_text, data.get("external_id"), max_length=64),
        "name": errors.parse(prefix + "name", v.parse_text, data.get("name"), max_length=200),
        "phone": errors.parse(prefix + "phone", v.parse_phone, data.get("phone")),
        "email": errors.parse(prefix + "email", v.parse_email, data.get("email")),
        "language": errors.parse(prefix + "language", v.parse_language, data.get("language") or "zh-hans"),
        "timezone": errors.parse(
            prefix + "timezone",
            v.parse_time_zone,
            data.get("timezone") or "Asia/Shanghai",
        ),
    }


def borrower_upsert(*, external_id: str, **fields: Any) -> Borrower:
    """Find the borrower by external id, creating it or bringing its details up to date.

    The lender's system is the source of truth for contact details, so newer data wins.
    Opt-outs and consent are never touched here: only the borrower changes those.
    """
    borrower = Borrower.objects.select_for_update().filter(external_id=external_id).first()
    if borrower is None:
        try:
            with transaction.atomic():
                return Borrower.objects.create(external_id=external_id, **fields)
        except IntegrityError:
            # Created concurrently by another request: fall through and update it.
            borrower = Borrower.objects.select_for_update().get(external_id=external_id)
    changed = [name for name, value in fields.items() if getattr(borrower, name) != value]
    if changed:
        for name in changed:
            setattr(borrower, name, fields[name])
        borrower.save(update_fields=[*changed, "updated_at"])
    return borrower


@transaction.atomic
def loan_create(
    *,
    external_id: str,
    borrower: Mapping[str, Any],
    principal: Decimal | str,
    currency: str,
    disbursed_on: dt.date | str,
    installments: Sequence[Mapping[str, Any]],
    product: str = "",
) -> Loan:
    """Create a loan with its repayment schedule; the borrower is matched by external id.

    Raises ValidationError naming each bad field (``borrower.phone``,
    ``installments[2].due_date``...) and LoanAlreadyExists for a known external id. Nothing
    is written unless everything is valid.
    """
    errors = FieldErrors()
    loan_external_id = errors.parse("external_id", v.parse_text, external_id, max_length=64)
    borrower_data = parse_borrower(borrower if isinstance(borrower, Mapping) else {}, errors)
    principal_amount = errors.parse("principal", v.parse_amount, principal)
    currency_code = errors.parse("currency", v.parse_currency, currency)
    disbursed = errors.parse("disbursed_on", v.parse_date, disbursed_on)
    product_name = errors.parse("product", v.parse_text, product, max_length=100, required=False)

    schedule: list[tuple[dt.date, Decimal]] = []
    if not installments:
        errors.add("installments", "A loan needs at least one installment.")
    previous: dt.date | None = None
    for index, item in enumerate(installments or []):
        due = errors.parse(f"installments[{index}].due_date", v.parse_date, item.get("due_date"))
        amount = errors.parse(f"installments[{index}].amount", v.parse_amount, item.get("amount"))
        if due is not None:
            if disbursed is not None and due < disbursed:
                errors.add(
                    f"installments[{index}].due_date",
                    f"{due} is before the disbursement date {disbursed}.",
                )
            if previous is not None and due <= previous:
                errors.add(
                    f"installments[{index}].due_date",
                    f"{due} is not after the previous installment's due date {previous}: list installments "
                    "in date order, one per date.",
                )
            previous = due
        if due is not None and amount is not None:
            schedule.append((due, amount))
    errors.raise_if_any()

    if Loan.objects.filter(external_id=loan_external_id).exists():
        raise LoanAlreadyExists(
            f"A loan with external id {loan_external_id} already exists.",
            field="external_id",
        )

    external_borrower_id = borrower_data.pop("external_id")
    borrower_obj = borrower_upsert(external_id=external_borrower_id, **borrower_data)
    try:
        with transaction.atomic():
            loan = Loan.objects.create(
                external_id=loan_external_id,
                borrower=borrower_obj,
                principal=principal_amount,
                currency=currency_code,
                disbursed_on=disbursed,
                product=product_name or "",
            )
    except IntegrityError:
        # Another request created the same loan between our check and our insert.
        raise LoanAlreadyExists(
            f"A loan with external id {loan_external_id} already exists.",
            field="external_id",
        ) from None
    Installment.objects.bulk_create(
        Installment(loan=loan, sequence=number, due_date=due, amount=amount)
        for number, (due, amount) in enumerate(schedule, start=1)
    )
    return loan
