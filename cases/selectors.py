"""Reads of the collections domain. Writes live in ``cases.services``."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, F, Min, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Case, ContactAttempt, ContactChannel, Installment, Loan
from .models.cases import LIVE_STATUSES
from .models.fields import MONEY_DIGITS, MONEY_PLACES, ZERO
from .policy import case_policy

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


# Visibility rules other apps add per role group (e.g. agency users see their placements).
# A rule takes the user and returns a Q on Case or a queryset of cases.
CaseVisibilityRule = Callable[[Any], "Q | QuerySet[Case]"]
_visibility_rules: dict[str, CaseVisibilityRule] = {}


def register_case_visibility(group_name: str, fn: CaseVisibilityRule | None) -> None:
    """Let members of ``group_name`` also see the cases ``fn(user)`` selects (``None`` removes).

    Registered from an app's ``AppConfig.ready`` so that ``cases`` never imports that app.
    The rule widens what the group sees; view_all_cases and the collectors' own assigned
    cases stay as they are. The case-work services use the same rule for who may act.
    """
    if fn is None:
        _visibility_rules.pop(group_name, None)
    else:
        _visibility_rules[group_name] = fn


def _visibility_q(user) -> Q:
    visible = Q(assigned_to=user)
    if not _visibility_rules:
        return visible
    # Group membership is read here (one small query, kept on the user object for the rest of
    # the request), not tested inside the cases query: an OR with an EXISTS there stops
    # PostgreSQL from using the (assigned_to, ...) index, and a collector's page becomes a
    # scan of every case (0.5 s and more at a million cases, bench/api.py).
    groups = getattr(user, "_case_visibility_groups", None)
    if groups is None:
        groups = set(user.groups.filter(name__in=list(_visibility_rules)).values_list("name", flat=True))
        user._case_visibility_groups = groups
    for group_name, rule_fn in _visibility_rules.items():
        if group_name in groups:
            rule = rule_fn(user)
            visible |= rule if isinstance(rule, Q) else Q(pk__in=rule.values("pk"))
    return visible


def cases_for_user(user) -> QuerySet[Case]:
    """The cases a user may see (and act on): all for supervisors and legal staff, assigned ones
    for collectors, plus whatever registered per-group rules add. Anonymous users see none."""
    qs = Case.objects.select_related("loan__borrower", "stage", "assigned_to")
    if user is None or not user.is_authenticated or not user.is_active:
        return qs.none()
    if user.is_superuser or user.has_perm("cases.view_all_cases"):
        return qs
    return qs.filter(_visibility_q(user))


def case_visible_to(*, case_id: int, user) -> bool:
    """Whether ``user`` may see and act on the case: the same rule as cases_for_user, one query."""
    return cases_for_user(user).filter(pk=case_id).exists()


@dataclass(frozen=True)
class CallCap:
    """Which call cap is reached (``attempts_per_week`` or ``connected_per_day``), its limit
    and when the next call is allowed."""

    cap: str
    limit: int
    next_allowed_at: dt.datetime


def call_next_allowed_at(*, case: Case, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the next phone call on the case is allowed under the call caps (CONTRACT section 6);
    None when a call is allowed now. One query (two when the compliance policy is read)."""
    reached = call_cap_reached(case=case, now=now)
    return reached.next_allowed_at if reached else None


def call_cap_reached(*, case: Case, now: dt.datetime | None = None) -> CallCap | None:
    """The call cap that stops a phone call now, or None.

    Two caps, both counting logged phone attempts of this case:
    - at most ``call_attempts_per_week`` attempts in any rolling 7 days: when full, the next
      call is allowed 7 days after the oldest attempt that must drop out of the window;
    - at most ``connected_calls_per_day`` connected calls per calendar day in the borrower's
      time zone: when full, the next call is allowed at the borrower's next midnight (a call
      may connect, so once the day's connected calls are used up no call is placed that day).
    """
    now = now or timezone.now()
    policy = case_policy()
    week_ago = now - dt.timedelta(days=7)
    attempts = list(
        ContactAttempt.objects.filter(
            case_id=case.pk, channel=ContactChannel.PHONE, attempted_at__gt=week_ago, attempted_at__lte=now
        )
        .order_by("attempted_at")
        .values_list("attempted_at", "connected")
    )
    reached: list[CallCap] = []
    weekly = policy.call_attempts_per_week
    if len(attempts) >= weekly:
        # One more call needs len - weekly + 1 attempts to age out of the window: the newest
        # of those leaves it 7 days after it was made.
        free_at = attempts[len(attempts) - weekly][0] + dt.timedelta(days=7) if weekly else None
        reached.append(CallCap("attempts_per_week", weekly, free_at or now + dt.timedelta(days=7)))
    zone = _zone(case.loan.borrower.timezone)
    local_today = now.astimezone(zone).date()
    day_start = dt.datetime.combine(local_today, dt.time(0), tzinfo=zone)
    connected_today = sum(1 for at, connected in attempts if connected and at >= day_start)
    if connected_today >= policy.connected_calls_per_day:
        tomorrow = dt.datetime.combine(local_today + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
        reached.append(CallCap("connected_per_day", policy.connected_calls_per_day, tomorrow))
    # Both caps must allow the call: the later time is the answer.
    return max(reached, key=lambda r: r.next_allowed_at, default=None)


def _zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


def loan_get(*, external_id: str) -> Loan | None:
    return Loan.objects.select_related("borrower").filter(external_id=external_id).first()


def loans_for_user(user) -> QuerySet[Loan]:
    """Loans a user may read: every loan for those who see every case or feed loans in (the
    integration role), otherwise the loans of the cases ``cases_for_user`` lets them see."""
    loans = Loan.objects.select_related("borrower")
    if user.is_superuser or user.has_perm("cases.view_all_cases") or user.has_perm("cases.add_loan"):
        return loans
    return loans.filter(pk__in=cases_for_user(user).values("loan_id"))
