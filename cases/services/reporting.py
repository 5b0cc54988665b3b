"""Keep the dashboard's summary rows (``cases.models.reporting``) up to date.

``dashboard_refresh`` recounts, from the case, event, contact, promise and payment tables:

- the book on the business date: live cases and balances per stage and aging bucket;
- each live case's aging bucket this month (and cured or closed for the cases that left),
  and from those the bucket-to-bucket roll matrix of this month (and last month while the
  window still reaches into it);
- the book's daily activity and each collector's day, for the last ``days`` business dates
  (payments and contacts may be recorded a little after midnight for the day before).

Set-based: a fixed number of GROUP BY queries whatever the number of cases, and the one
per-case table is written by a single ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``.

Idempotent: every write is a difference. Small tables are compared with what is stored and
only new, changed and vanished rows are written; the per-case upsert updates a row only
``WHERE`` its bucket or balance differs. A second run over unchanged data therefore writes
nothing and says so (``RefreshResult.total == 0``). Two runs at once are serialised by a
row lock on the single ``DashboardRefresh`` row, so the second one sees the first one's
rows and also writes nothing; the unique constraints would refuse duplicates anyway.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Case as SqlCase
from django.db.models import Count, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from cases.models import (
    AgingBucket,
    BucketRoll,
    Case,
    CaseEvent,
    CaseMonthBucket,
    CollectorDay,
    ContactAttempt,
    DailyActivity,
    DashboardRefresh,
    EventKind,
    Payment,
    PromiseToPay,
    StageSnapshot,
)
from cases.models.cases import LIVE_STATUSES
from cases.models.fields import ZERO
from cases.models.reporting import BUCKET_LIMITS, OVERDUE_BUCKETS
from cases.models.work import ContactOutcome

# Outcomes in which the collector spoke with the borrower themself (a promise is made by
# the borrower, so it is a right-party contact too).
RIGHT_PARTY_OUTCOMES = (ContactOutcome.RIGHT_PARTY, ContactOutcome.PROMISE)
DEFAULT_WINDOW_DAYS = 2
_CENT = Decimal("0.01")


@dataclass
class RefreshResult:
    as_of: dt.date
    # Rows created, updated or deleted, per summary table.
    changes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.changes.values())


def business_zone() -> zoneinfo.ZoneInfo:
    """The portal's business time zone. Not the request's: dates here are collection days."""
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=business_zone())


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def previous_month(month: dt.date) -> dt.date:
    return month_start(month - dt.timedelta(days=1))


def next_month(month: dt.date) -> dt.date:
    return month_start(month + dt.timedelta(days=32))


def bucket_for(days_past_due: int) -> str:
    """The aging bucket of a number of days past due (0: cured)."""
    if days_past_due <= 0:
        return AgingBucket.CURED
    for bucket, limit in BUCKET_LIMITS:
        if days_past_due <= limit:
            return bucket
    return AgingBucket.M3_PLUS


def _bucket_expression() -> SqlCase:
    whens = [When(days_past_due__lte=0, then=Value(AgingBucket.CURED.value))]
    whens += [When(days_past_due__lte=limit, then=Value(bucket.value)) for bucket, limit in BUCKET_LIMITS]
    return SqlCase(*whens, default=Value(AgingBucket.M3_PLUS.value), output_field=models.CharField())


def _bucket_sql(column: str) -> str:
    parts = [f"WHEN {column} <= 0 THEN '{AgingBucket.CURED.value}'"]
    parts += [f"WHEN {column} <= {limit} THEN '{bucket.value}'" for bucket, limit in BUCKET_LIMITS]
    return f"CASE {' '.join(parts)} ELSE '{AgingBucket.M3_PLUS.value}' END"


def _money(value: Any) -> Decimal:
    # SQLite hands sums back as floats or ints; PostgreSQL as Decimals of any exponent.
    return Decimal(str(value or 0)).quantize(_CENT)


def _sync(
    model: type[models.Model],
    *,
    scope: Q,
    keys: tuple[str, ...],
    fresh: dict[tuple, dict[str, Any]],
) -> int:
    """Make the rows of ``model`` within ``scope`` equal ``fresh`` (key tuple -> values):
    insert the missing, update the different, delete the vanished. Returns rows written."""
    existing = {tuple(getattr(row, k) for k in keys): row for row in model.objects.filter(scope)}
    to_create, to_update, fields = [], [], set()
    for key, values in fresh.items():
        row = existing.pop(key, None)
        if row is None:
            to_create.append(model(**dict(zip(keys, key, strict=True)), **values))
            continue
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        if changed:
            for name in changed:
                setattr(row, name, values[name])
            fields.update(changed)
            to_update.append(row)
    model.objects.bulk_create(to_create, batch_size=1000)
    if to_update:
        model.objects.bulk_update(to_update, sorted(fields), batch_size=1000)
    if existing:
        model.objects.filter(pk__in=[row.pk for row in existing.values()]).delete()
    return len(to_create) + len(to_update) + len(existing)


def _day_counts(queryset, field_name: str, by: Iterable[str] = ()) -> list[dict[str, Any]]:
    return list(
        queryset.annotate(day=TruncDate(field_name, tzinfo=business_zone()))
        .values("day", *by)
        .annotate(n=Count("pk"))
        .order_by()
    )


# --- the parts -------------------------------------------------------------------------------


def _stage_snapshot(as_of: dt.date) -> int:
    rows = (
        Case.objects.filter(status__in=LIVE_STATUSES)
        .annotate(bucket=_bucket_expression())
        .values("stage__code", "bucket")
        .annotate(n=Count("pk"), balance=Sum("outstanding"), overdue=Sum("overdue_amount"))
        .order_by()
    )
    fresh = {
        (as_of, row["stage__code"] or "", row["bucket"]): {
            "case_count": row["n"],
            "balance": _money(row["balance"]),
            "overdue": _money(row["overdue"]),
        }
        for row in rows
    }
    return _sync(StageSnapshot, scope=Q(date=as_of), keys=("date", "stage_code", "bucket"), fresh=fresh)


def _month_buckets(as_of: dt.date, first_day: dt.date) -> int:
    """Write this month's bucket of every live case, and cured/closed for every case that
    left collections in a month the window covers. One statement per month."""
    table = CaseMonthBucket._meta.db_table
    month = month_start(as_of)
    upsert = f"""
        ON CONFLICT (month, case_id) DO UPDATE SET bucket = excluded.bucket, balance = excluded.balance
        WHERE {table}.bucket <> excluded.bucket OR {table}.balance <> excluded.balance
    """
    live = ", ".join(f"'{status.value}'" for status in LIVE_STATUSES)
    written = 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (month, case_id, bucket, balance)
            SELECT %s, c.id, {_bucket_sql("c.days_past_due")}, c.outstanding
            FROM cases_case c WHERE c.status IN ({live})
            {upsert}
            """,
            [month],
        )
        written += cursor.rowcount
        left_month = month_start(first_day)
        while left_month <= month:
            # Cases that left in the month; the end is today's end for the current month.
            lo = day_start(left_month)
            hi = day_start(min(next_month(left_month), as_of + dt.timedelta(days=1)))
            cursor.execute(
                f"""
                INSERT INTO {table} (month, case_id, bucket, balance)
                SELECT %s, c.id,
                       CASE WHEN c.status = 'resolved' THEN '{AgingBucket.CURED.value}'
                            ELSE '{AgingBucket.CLOSED.value}' END,
                       c.outstanding
                FROM cases_case c
                WHERE (c.status = 'resolved' AND c.resolved_at >= %s AND c.resolved_at < %s)
                   OR (c.status = 'closed' AND c.closed_at >= %s AND c.closed_at < %s)
                {upsert}
                """,
                [left_month, lo, hi, lo, hi],
            )
            written += cursor.rowcount
            left_month = next_month(left_month)
    return written


def _bucket_rolls(as_of: dt.date, first_day: dt.date) -> int:
    table = CaseMonthBucket._meta.db_table
    overdue = ", ".join(f"'{bucket.value}'" for bucket in OVERDUE_BUCKETS)
    written = 0
    month = month_start(first_day)
    while month <= month_start(as_of):
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT p.bucket, n.bucket, COUNT(*), SUM(p.balance)
                FROM {table} p JOIN {table} n ON n.case_id = p.case_id AND n.month = %s
                WHERE p.month = %s AND p.bucket IN ({overdue})
                GROUP BY p.bucket, n.bucket
                """,
                [month, previous_month(month)],
            )
            fresh = {
                (month, from_bucket, to_bucket): {"case_count": n, "balance": _money(balance)}
                for from_bucket, to_bucket, n, balance in cursor.fetchall()
            }
        written += _sync(BucketRoll, scope=Q(month=month), keys=("month", "from_bucket", "to_bucket"), fresh=fresh)
        month = next_month(month)
    return written


def _activity(first_day: dt.date, as_of: dt.date) -> tuple[int, int]:
    lo, hi = day_start(first_day), day_start(as_of + dt.timedelta(days=1))
    days = [first_day + dt.timedelta(days=n) for n in range((as_of - first_day).days + 1)]
    book: dict[dt.date, dict[str, Any]] = {
        day: dict.fromkeys(_ACTIVITY_COUNTS, 0) | {"amount_collected": ZERO} for day in days
    }
    people: dict[tuple[dt.date, int], dict[str, Any]] = defaultdict(
        lambda: {"contacts": 0, "right_party_contacts": 0, "promises": 0, "amount_collected": ZERO}
    )

    # The timeline says what happened to cases; one GROUP BY over the (kind, at) index.
    events = CaseEvent.objects.filter(kind__in=list(_EVENT_COUNTS), at__gte=lo, at__lt=hi)
    for row in _day_counts(events, "at", by=("kind",)):
        book[row["day"]][_EVENT_COUNTS[row["kind"]]] += row["n"]

    contacts = ContactAttempt.objects.filter(attempted_at__gte=lo, attempted_at__lt=hi).annotate(
        right_party=SqlCase(
            When(outcome__in=RIGHT_PARTY_OUTCOMES, then=Value(True)),
            default=Value(False),
            output_field=models.BooleanField(),
        )
    )
    for row in _day_counts(contacts, "attempted_at", by=("collector_id", "right_party")):
        book[row["day"]]["contacts"] += row["n"]
        if row["right_party"]:
            book[row["day"]]["right_party_contacts"] += row["n"]
        if row["collector_id"] is not None:
            person = people[(row["day"], row["collector_id"])]
            person["contacts"] += row["n"]
            if row["right_party"]:
                person["right_party_contacts"] += row["n"]

    promises = PromiseToPay.objects.filter(created_at__gte=lo, created_at__lt=hi, created_by__isnull=False)
    for row in _day_counts(promises, "created_at", by=("created_by_id",)):
        people[(row["day"], row["created_by_id"])]["promises"] += row["n"]

    # Money paid on a loan while it had a live case: the case that was open at the time
    # (a loan has at most one), credited to the collector the case is assigned to now.
    collected = (
        # One filter() call: conditions on a multi-valued relation in separate calls would
        # each get their own join and could match different cases.
        Payment.objects.filter(
            Q(loan__cases__resolved_at__isnull=True) | Q(loan__cases__resolved_at__gte=models.F("paid_at")),
            Q(loan__cases__closed_at__isnull=True) | Q(loan__cases__closed_at__gte=models.F("paid_at")),
            paid_at__gte=lo,
            paid_at__lt=hi,
            loan__cases__opened_at__lte=models.F("paid_at"),
        )
        .annotate(day=TruncDate("paid_at", tzinfo=business_zone()))
        .values("day", "loan__cases__assigned_to")
        .annotate(amount=Sum(models.F("amount") - models.F("unallocated")))
        .order_by()
    )
    for row in collected:
        amount = _money(row["amount"])
        book[row["day"]]["amount_collected"] += amount
        collector_id = row["loan__cases__assigned_to"]
        if collector_id is not None:
            people[(row["day"], collector_id)]["amount_collected"] += amount

    # A day with nothing keeps no row: absent rows read as zeros.
    fresh_book = {(day,): values for day, values in book.items() if any(values.values())}
    fresh_people = {key: values for key, values in people.items() if any(values.values())}
    scope = Q(date__gte=first_day, date__lte=as_of)
    return (
        _sync(DailyActivity, scope=scope, keys=("date",), fresh=fresh_book),
        _sync(CollectorDay, scope=scope, keys=("date", "collector_id"), fresh=fresh_people),
    )


_EVENT_COUNTS = {
    EventKind.OPENED.value: "cases_opened",
    EventKind.RESOLVED.value: "cases_cured",
    EventKind.CLOSED.value: "cases_closed",
    EventKind.STAGE_CHANGED.value: "escalations",
    EventKind.PROMISE_MADE.value: "promises_made",
    EventKind.PROMISE_KEPT.value: "promises_kept",
    EventKind.PROMISE_BROKEN.value: "promises_broken",
}
_ACTIVITY_COUNTS = (*_EVENT_COUNTS.values(), "contacts", "right_party_contacts")


def dashboard_refresh(
    *, as_of: dt.date | None = None, days: int = DEFAULT_WINDOW_DAYS, now: dt.datetime | None = None
) -> RefreshResult:
    """Recount the dashboard's summary rows for business date ``as_of`` (default: today)
    and the ``days`` - 1 dates before it. What the Celery task runs every 15 minutes."""
    if days < 1:
        raise ValueError("days: refresh at least one day.")
    now = now or timezone.now()
    as_of = as_of or timezone.localdate(now, business_zone())
    first_day = as_of - dt.timedelta(days=days - 1)
    result = RefreshResult(as_of=as_of)
    # The lock row must exist before it can be locked; the insert is a no-op once it does.
    DashboardRefresh.objects.bulk_create([DashboardRefresh(id=1)], ignore_conflicts=True)
    with transaction.atomic():
        state = DashboardRefresh.objects.select_for_update().get(pk=1)
        result.changes["stage_snapshot"] = _stage_snapshot(as_of)
        result.changes["case_month_bucket"] = _month_buckets(as_of, first_day)
        result.changes["bucket_roll"] = _bucket_rolls(as_of, first_day)
        result.changes["daily_activity"], result.changes["collector_day"] = _activity(first_day, as_of)
        # Only a refresh that changed something moves the time the figures date from: a
        # run over unchanged data writes nothing at all.
        if result.total or state.as_of is None or state.as_of < as_of:
            state.as_of = max(as_of, state.as_of or as_of)
            state.refreshed_at = now
            state.changes = result.changes
            state.save()
    return result
