"""Reads behind the supervisor pages: the dashboard's figures, the team case list and the
approvals waiting.

The dashboard's figures read only the summary rows that ``cases.services.reporting``
keeps (a handful of rows per day), never the case or event tables over a date range, so
each costs one or two small queries whatever the number of cases. The team list and the
approvals are index-backed pages of cases with every related row joined in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Max, Q, QuerySet, Subquery, Sum

from accounts.models import User
from cases.models import (
    AgingBucket,
    BucketRoll,
    Case,
    CaseStatus,
    CollectorDay,
    DailyActivity,
    DashboardRefresh,
    Stage,
    StageSnapshot,
)
from cases.models.fields import ZERO
from cases.models.reporting import OVERDUE_BUCKETS
from cases.services.reporting import month_start, next_month, previous_month

# Roll rates are shown for at least this many months, however short the date range.
MIN_ROLL_MONTHS = 6


@dataclass(frozen=True)
class Period:
    """The dashboard's date range, both ends included, and the business date today."""

    start: dt.date
    end: dt.date
    today: dt.date

    @property
    def week_start(self) -> dt.date:
        return self.today - dt.timedelta(days=self.today.weekday())


def ratio(part: int | Decimal, whole: int | Decimal) -> float | None:
    """part / whole, or None (shown as "n/a") when there is nothing to divide by."""
    if not whole:
        return None
    return float(part) / float(whole)


# --- the book: stages and aging ----------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRow:
    stage_code: str
    bucket: str
    case_count: int
    balance: Decimal


def book_snapshot(*, on: dt.date) -> tuple[dt.date | None, list[SnapshotRow]]:
    """The latest snapshot on or before ``on``: its date and rows. One query."""
    rows = list(
        StageSnapshot.objects.filter(
            date=Subquery(StageSnapshot.objects.filter(date__lte=on).order_by("-date").values("date")[:1])
        ).values_list("date", "stage_code", "bucket", "case_count", "balance")
    )
    if not rows:
        return None, []
    return rows[0][0], [SnapshotRow(code, bucket, n, balance) for _d, code, bucket, n, balance in rows]


def stages_in_order() -> list[Stage]:
    return list(Stage.objects.order_by("order"))


@dataclass(frozen=True)
class FunnelRow:
    stage: Stage | None
    stage_code: str
    case_count: int
    balance: Decimal


def stage_funnel(*, on: dt.date) -> tuple[dt.date | None, list[FunnelRow]]:
    """Live cases and balance per stage on the business date ``on`` (every stage listed,
    in order, empty ones with zeros). Two queries."""
    date, rows = book_snapshot(on=on)
    totals: dict[str, list] = {}
    for row in rows:
        total = totals.setdefault(row.stage_code, [0, ZERO])
        total[0] += row.case_count
        total[1] += row.balance
    funnel = []
    for stage in stages_in_order():
        count, balance = totals.pop(stage.code, [0, ZERO])
        if stage.active or count:
            funnel.append(FunnelRow(stage, stage.code, count, balance))
    # Cases of a stage that no longer exists, or of none yet.
    funnel += [FunnelRow(None, code, count, balance) for code, (count, balance) in sorted(totals.items())]
    return date, funnel


@dataclass(frozen=True)
class AgingRow:
    bucket: str
    label: str
    case_count: int
    balance: Decimal
    share_of_cases: float | None
    share_of_balance: float | None


def aging_buckets(*, on: dt.date) -> tuple[dt.date | None, list[AgingRow]]:
    """Live cases and balance per aging bucket on ``on``. One query."""
    date, rows = book_snapshot(on=on)
    counts = dict.fromkeys(OVERDUE_BUCKETS, 0)
    balances = dict.fromkeys(OVERDUE_BUCKETS, ZERO)
    for row in rows:
        if row.bucket in counts:
            counts[row.bucket] += row.case_count
            balances[row.bucket] += row.balance
    all_cases, all_balance = sum(counts.values()), sum(balances.values(), ZERO)
    labels = dict(AgingBucket.choices)
    return date, [
        AgingRow(
            bucket,
            str(labels[bucket]),
            counts[bucket],
            balances[bucket],
            ratio(counts[bucket], all_cases),
            ratio(balances[bucket], all_balance),
        )
        for bucket in OVERDUE_BUCKETS
    ]


# --- roll rates --------------------------------------------------------------------------


@dataclass(frozen=True)
class RollRow:
    month: dt.date
    from_bucket: str
    to_bucket: str
    case_count: int
    rate: float | None


def roll_months(period: Period) -> list[dt.date]:
    """The months of the range, and at least the ``MIN_ROLL_MONTHS`` up to its end."""
    last = month_start(period.end)
    first = month_start(period.start)
    earliest = last
    for _ in range(MIN_ROLL_MONTHS - 1):
        earliest = previous_month(earliest)
    month, months = min(first, earliest), []
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def roll_rates(period: Period) -> list[RollRow]:
    """For each month: of the cases in a bucket at the end of the month before, the share in
    each bucket at the end of this month (the current month: as of today). One query."""
    months = roll_months(period)
    rolls = list(
        BucketRoll.objects.filter(month__gte=months[0], month__lte=months[-1])
        .order_by("month", "from_bucket", "to_bucket")
        .values_list("month", "from_bucket", "to_bucket", "case_count")
    )
    starting: dict[tuple[dt.date, str], int] = {}
    for month, from_bucket, _to, count in rolls:
        starting[(month, from_bucket)] = starting.get((month, from_bucket), 0) + count
    order = {bucket: n for n, bucket in enumerate(AgingBucket.values)}
    rolls.sort(key=lambda r: (r[0], order[r[1]], order[r[2]]))
    return [
        RollRow(month, from_bucket, to_bucket, count, ratio(count, starting[(month, from_bucket)]))
        for month, from_bucket, to_bucket, count in rolls
    ]


# --- rates and activity ------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    opened: int
    cured: int
    escalations: int
    escalations_today: int
    escalations_this_week: int
    promises_kept: int
    promises_broken: int
    promises_made: int
    contacts: int
    right_party_contacts: int
    collected: Decimal
    start_cases: int
    start_balance: Decimal
    start_date: dt.date | None

    @property
    def cure_rate(self) -> float | None:
        return ratio(self.cured, self.start_cases + self.opened)

    @property
    def promise_kept_rate(self) -> float | None:
        return ratio(self.promises_kept, self.promises_kept + self.promises_broken)

    @property
    def right_party_contact_rate(self) -> float | None:
        return ratio(self.right_party_contacts, self.contacts)

    @property
    def recovery_rate(self) -> float | None:
        return ratio(self.collected, self.start_balance)


def book_rates(period: Period) -> Rates:
    """The period's activity and the book at its start. Two queries."""
    in_range = Q(date__gte=period.start, date__lte=period.end)
    this_week = Q(date__gte=period.week_start, date__lte=period.today)
    # Aliases may not reuse a field's name in aggregate().
    sums = {
        f"sum_{name}": Sum(name, filter=in_range, default=0)
        for name in (
            "cases_opened",
            "cases_cured",
            "escalations",
            "promises_made",
            "promises_kept",
            "promises_broken",
            "contacts",
            "right_party_contacts",
            "amount_collected",
        )
    }
    activity = DailyActivity.objects.filter(in_range | this_week).aggregate(
        **sums,
        escalations_today=Sum("escalations", filter=Q(date=period.today), default=0),
        escalations_this_week=Sum("escalations", filter=this_week, default=0),
    )
    # The book the period started with: the last snapshot before its first day.
    start = StageSnapshot.objects.filter(
        date=Subquery(StageSnapshot.objects.filter(date__lt=period.start).order_by("-date").values("date")[:1])
    ).aggregate(cases=Sum("case_count", default=0), balance=Sum("balance", default=ZERO), date=Max("date"))
    return Rates(
        opened=activity["sum_cases_opened"],
        cured=activity["sum_cases_cured"],
        escalations=activity["sum_escalations"],
        escalations_today=activity["escalations_today"],
        escalations_this_week=activity["escalations_this_week"],
        promises_kept=activity["sum_promises_kept"],
        promises_broken=activity["sum_promises_broken"],
        promises_made=activity["sum_promises_made"],
        contacts=activity["sum_contacts"],
        right_party_contacts=activity["sum_right_party_contacts"],
        collected=Decimal(activity["sum_amount_collected"] or 0),
        start_cases=start["cases"],
        start_balance=Decimal(start["balance"] or 0),
        start_date=start["date"],
    )


@dataclass(frozen=True)
class DayRow:
    date: dt.date
    escalations: int
    cured: int
    contacts: int
    right_party_contacts: int
    collected: Decimal


def daily_activity(period: Period) -> list[DayRow]:
    """One row per day of the range that had activity. One query."""
    return [
        DayRow(d.date, d.escalations, d.cases_cured, d.contacts, d.right_party_contacts, d.amount_collected)
        for d in DailyActivity.objects.filter(date__gte=period.start, date__lte=period.end).order_by("date")
    ]


@dataclass(frozen=True)
class CollectorRow:
    username: str
    name: str
    contacts: int
    right_party_contacts: int
    promises: int
    collected: Decimal

    @property
    def right_party_contact_rate(self) -> float | None:
        return ratio(self.right_party_contacts, self.contacts)


def collector_productivity(period: Period) -> list[CollectorRow]:
    """Each collector's totals over the range, most collected first. One query."""
    rows = (
        CollectorDay.objects.filter(date__gte=period.start, date__lte=period.end)
        .values("collector__username", "collector__first_name", "collector__last_name")
        .annotate(
            contacts=Sum("contacts"),
            rpc=Sum("right_party_contacts"),
            promises=Sum("promises"),
            collected=Sum("amount_collected"),
        )
        .order_by("-collected", "collector__username")
    )
    return [
        CollectorRow(
            r["collector__username"],
            f"{r['collector__first_name']} {r['collector__last_name']}".strip() or r["collector__username"],
            r["contacts"],
            r["rpc"],
            r["promises"],
            Decimal(r["collected"] or 0),
        )
        for r in rows
    ]


def last_refresh() -> DashboardRefresh | None:
    return DashboardRefresh.objects.filter(pk=1).first()


# --- approvals and the team list -----------------------------------------------------------


def approvals_waiting() -> QuerySet[Case]:
    """Cases waiting for a supervisor to approve a stage, oldest request first (the
    status index finds them; the rest is joined in)."""
    return (
        Case.objects.filter(status=CaseStatus.AWAITING_APPROVAL)
        .select_related("loan__borrower", "stage", "pending_stage", "assigned_to", "approval_requested_by")
        .order_by("approval_requested_at", "id")
    )


@dataclass(frozen=True)
class TeamFilters:
    stage: str = ""
    status: str = ""
    collector: int | None = None
    unassigned: bool = False
    min_dpd: int | None = None
    max_dpd: int | None = None


def team_cases(filters: TeamFilters) -> QuerySet[Case]:
    """Every case, filtered, most overdue first; the id breaks ties so pages never overlap."""
    qs = Case.objects.select_related("loan__borrower", "stage", "pending_stage", "assigned_to")
    if filters.stage:
        # stage_id = (SELECT id ...), not a filter on the joined stage's code: with the join
        # PostgreSQL cannot walk case_team_stage_idx in page order (38 s at 1M cases, 3 ms now).
        qs = qs.filter(stage_id=Subquery(Stage.objects.filter(code=filters.stage).values("id")[:1]))
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.unassigned:
        qs = qs.filter(assigned_to__isnull=True)
    elif filters.collector is not None:
        qs = qs.filter(assigned_to_id=filters.collector)
    if filters.min_dpd is not None:
        qs = qs.filter(days_past_due__gte=filters.min_dpd)
    if filters.max_dpd is not None:
        qs = qs.filter(days_past_due__lte=filters.max_dpd)
    return qs.order_by("-days_past_due", "-id")


def collectors() -> QuerySet[User]:
    """Active collectors, for the filters and as targets of a reassignment."""
    return User.objects.filter(is_active=True, groups__name="collector").order_by("username")


# --- paging without COUNT(*) ---------------------------------------------------------------

# How far the lists count matches exactly; past it they say "more than".
COUNT_LIMIT = 1000


@dataclass(frozen=True)
class ListPage:
    """One page of a list, read without counting every match: a COUNT(*) over a million
    cases costs as much as the rest of the page many times over. The page asks for one row
    more than it shows to learn whether a next page exists."""

    object_list: list
    number: int
    per_page: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.object_list else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.object_list)


def list_page(queryset: QuerySet, *, page: str | None, per_page: int) -> ListPage:
    """The page numbered ``page`` (1 when missing or not a positive number). One query."""
    number = int(page) if page and page.isdigit() and int(page) > 0 else 1
    offset = (number - 1) * per_page
    rows = list(queryset[offset : offset + per_page + 1])
    return ListPage(rows[:per_page], number, per_page, len(rows) > per_page)


@dataclass(frozen=True)
class BoundedCount:
    value: int
    more: bool  # True: at least ``value`` matches, and there are more


def count_up_to(queryset: QuerySet, limit: int | None = None) -> BoundedCount:
    """How many rows match, counted up to ``limit``: COUNT over a LIMITed subquery, so it
    stops early however many cases match. One query."""
    limit = limit or COUNT_LIMIT
    n = queryset.order_by()[: limit + 1].count()
    return BoundedCount(min(n, limit), n > limit)
