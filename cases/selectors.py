"""Reads of the collections domain. Writes live in ``cases.services``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, F, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Case, Installment, Loan
from .models.cases import LIVE_STATUSES
from .models.fields import MONEY_DIGITS, MONEY_PLACES, ZERO

_MONEY = DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)


def business_date(now: dt.datetime | None = None) -> dt.date:
    """Today in the portal's business time zone (settings.TIME_ZONE): the collection day."""
    return timezone.localdate(now or timezone.now())


def days_past_due(oldest_unpaid_due_date: dt.date | None, as_of: dt.date) -> int:
    """CONTRACT section 4: days from the oldest installment not fully paid to the business
    date; 0 when nothing is overdue (on the due date itself the borrower is not yet late)."""
    if oldest_unpaid_due_date is None:
        return 0
    return max(0, (as_of - oldest_unpaid_due_date).days)


@dataclass(frozen=True)
class LoanBalance:
    days_past_due: int
    outstanding: Decimal
    overdue_amount: Decimal
    oldest_unpaid_due_date: dt.date | None


def loan_balance(*, loan_id: int, as_of: dt.date) -> LoanBalance:
    """Days past due, everything still owed and what is owed on past-due installments: one query."""
    remaining = F("amount") - F("paid_amount")
    row = Installment.objects.filter(loan_id=loan_id).aggregate(
        outstanding=Coalesce(Sum(remaining, output_field=_MONEY), Value(ZERO), output_field=_MONEY),
        overdue=Coalesce(
            Sum(remaining, filter=Q(due_date__lt=as_of), output_field=_MONEY),
            Value(ZERO),
            output_field=_MONEY,
        ),
        oldest=Min("due_date", filter=Q(paid_amount__lt=F("amount"))),
    )
    return LoanBalance(
        days_past_due=days_past_due(row["oldest"], as_of),
        outstanding=row["outstanding"],
        overdue_amount=row["overdue"],
        oldest_unpaid_due_date=row["oldest"],
    )


def loan_live_case(*, loan_id: int) -> Case | None:
    return Case.objects.filter(loan_id=loan_id, status__in=LIVE_STATUSES).first()


def cases_for_user(user) -> QuerySet[Case]:
    """The cases a user may see: all for supervisors and legal staff, assigned ones for collectors."""
    qs = Case.objects.select_related("loan__borrower", "stage", "assigned_to")
    if user.is_superuser or user.has_perm("cases.view_all_cases"):
        return qs
    return qs.filter(assigned_to=user)


def loan_get(*, external_id: str) -> Loan | None:
    return Loan.objects.select_related("borrower").filter(external_id=external_id).first()
