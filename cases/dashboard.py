"""The supervisor dashboard's panels, and the registry other apps add theirs to.

A panel is a titled table with its definition, an optional chart of the same numbers and
a CSV export. ``cases`` registers its own panels below; ``notifications`` and ``legal``,
which ``cases`` may not import, register theirs from their ``AppConfig.ready``::

    from cases.dashboard import Panel, register_dashboard_panel

    def delivery(period):
        return Panel(key="delivery", title=..., definition=..., columns=[...], rows=[...])

    register_dashboard_panel("delivery", delivery, order=70)

A panel function takes the dashboard's ``Period`` and must send a fixed number of
queries whatever the number of cases (the dashboard's query count is pinned in tests).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.formats import date_format
from django.utils.translation import gettext as _

from cases.models import AgingBucket
from cases.selectors_dashboard import (
    Period,
    aging_buckets,
    approvals_waiting,
    book_rates,
    collector_productivity,
    daily_activity,
    roll_rates,
    stage_funnel,
)


class Percent:
    """A ratio shown as a percentage; None when there was nothing to divide by."""

    def __init__(self, value: float | None) -> None:
        self.value = value

    def display(self) -> str:
        return "n/a" if self.value is None else f"{self.value * 100:.1f}%"

    def csv(self) -> str:
        return "" if self.value is None else f"{self.value * 100:.2f}"

    def number(self) -> float | None:
        return None if self.value is None else round(self.value * 100, 2)


def display_cell(value: Any) -> str:
    if isinstance(value, Percent):
        return value.display()
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if value is None:
        return "—"
    return str(value)


def csv_cell(value: Any) -> str:
    if isinstance(value, Percent):
        return value.csv()
    if isinstance(value, dt.date):
        return value.isoformat()
    return "" if value is None else str(value)


def chart_number(value: Any) -> float | int | None:
    if isinstance(value, Percent):
        return value.number()
    if isinstance(value, Decimal):
        return float(value)
    return value


@dataclass
class Chart:
    """What dashboard.js hands to Chart.js: a bar, line or doughnut chart of the table's numbers."""

    kind: str
    labels: list[str]
    datasets: list[tuple[str, list[Any]]]
    percent: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "labels": [str(label) for label in self.labels],
            "datasets": [
                {"label": str(label), "data": [chart_number(v) for v in data]} for label, data in self.datasets
            ],
            "percent": self.percent,
        }


@dataclass
class Panel:
    key: str
    title: str
    definition: str
    columns: list[str]
    rows: list[list[Any]]
    chart: Chart | None = None
    # Shown under the title: e.g. the date of the summary the figures come from.
    note: str = ""
    # Definitions of single figures (a row label -> how it is computed), listed under the table.
    terms: list[tuple[str, str]] = field(default_factory=list)

    @property
    def display_rows(self) -> list[list[str]]:
        return [[display_cell(cell) for cell in row] for row in self.rows]

    @property
    def csv_rows(self) -> list[list[str]]:
        return [[str(c) for c in self.columns]] + [[csv_cell(cell) for cell in row] for row in self.rows]


PanelFunction = Callable[[Period], Panel]


@dataclass(frozen=True)
class _Entry:
    key: str
    function: PanelFunction
    order: int
    on_page: bool


_registry: dict[str, _Entry] = {}


def register_dashboard_panel(key: str, function: PanelFunction, *, order: int = 100, on_page: bool = True) -> None:
    """Add (or replace) a panel. ``order`` places it on the page; ``on_page=False`` panels
    are only exported as CSV (their table is drawn elsewhere, e.g. the approvals list)."""
    if not key.replace("_", "").isalnum():
        raise ValueError(f"Panel key {key!r}: use letters, digits and underscores (it is part of the CSV's URL).")
    _registry[key] = _Entry(key, function, order, on_page)


def unregister_dashboard_panel(key: str) -> None:
    _registry.pop(key, None)


def dashboard_panel_keys() -> list[str]:
    return [e.key for e in sorted(_registry.values(), key=lambda e: (e.order, e.key)) if e.on_page]


def dashboard_panels(period: Period) -> list[Panel]:
    return [_registry[key].function(period) for key in dashboard_panel_keys()]


def dashboard_panel(key: str, period: Period) -> Panel | None:
    entry = _registry.get(key)
    return entry.function(period) if entry else None


# --- the core's panels ---------------------------------------------------------------------


def _as_of_note(date: dt.date | None, end: dt.date) -> str:
    if date is None:
        return _("No summary yet for a day up to %(end)s: the figures appear after the next refresh.") % {
            "end": date_format(end, "SHORT_DATE_FORMAT")
        }
    return _("The book as it stood on %(date)s.") % {"date": date_format(date, "SHORT_DATE_FORMAT")}


def funnel_panel(period: Period) -> Panel:
    date, funnel = stage_funnel(on=period.end)
    names = [row.stage.display_name if row.stage else (row.stage_code or _("No stage")) for row in funnel]
    return Panel(
        key="funnel",
        title=_("Cases and balance per stage"),
        definition=_(
            "The funnel: live cases (open, on hold or awaiting approval) in each collection stage on the last day "
            "of the range, and their balance (everything still owed on their loans). A case waiting for approval "
            "of the next stage counts in the stage it is in."
        ),
        columns=[_("Stage"), _("Cases"), _("Balance")],
        rows=[[name, row.case_count, row.balance] for name, row in zip(names, funnel, strict=True)],
        chart=Chart("bar", names, [(_("Cases"), [row.case_count for row in funnel])]),
        note=_as_of_note(date, period.end),
    )


def aging_panel(period: Period) -> Panel:
    date, rows = aging_buckets(on=period.end)
    labels = [row.label for row in rows]
    return Panel(
        key="aging",
        title=_("Aging buckets"),
        definition=_(
            "Live cases by days past due (DPD) on the last day of the range: M1 is 1-30 days, M2 31-60, "
            "M3 61-90 and M3+ over 90. Shares are of all live cases and of their whole balance."
        ),
        columns=[_("Bucket"), _("Cases"), _("Share of cases"), _("Balance"), _("Share of balance")],
        rows=[[r.label, r.case_count, Percent(r.share_of_cases), r.balance, Percent(r.share_of_balance)] for r in rows],
        chart=Chart("doughnut", labels, [(_("Cases"), [r.case_count for r in rows])]),
        note=_as_of_note(date, period.end),
    )


def rates_panel(period: Period) -> Panel:
    rates = book_rates(period)
    start = date_format(rates.start_date, "SHORT_DATE_FORMAT") if rates.start_date else _("no summary before the range")
    figures = [
        (
            _("Cure rate"),
            Percent(rates.cure_rate),
            f"{rates.cured:,} / {rates.start_cases + rates.opened:,}",
            _(
                "Cases cured (paid back to 0 days past due) in the range, divided by the live cases at the start "
                "(the day before the range) plus the cases opened in the range."
            ),
        ),
        (
            _("Promise-kept rate"),
            Percent(rates.promise_kept_rate),
            f"{rates.promises_kept:,} / {rates.promises_kept + rates.promises_broken:,}",
            _(
                "Promises to pay settled in the range that were kept (paid in full by the promised date plus the "
                "grace days), divided by all promises settled in the range (kept plus broken)."
            ),
        ),
        (
            _("Right-party-contact rate"),
            Percent(rates.right_party_contact_rate),
            f"{rates.right_party_contacts:,} / {rates.contacts:,}",
            _(
                "Contact attempts in the range in which the collector spoke with the borrower themself (outcome "
                "right-party contact or promise to pay), divided by all contact attempts logged."
            ),
        ),
        (
            _("Recovery rate"),
            Percent(rates.recovery_rate),
            f"{rates.collected:,.2f} / {rates.start_balance:,.2f}",
            _(
                "Money paid in the range on loans while they had a live case, divided by the balance of the live "
                "cases at the start (the day before the range)."
            ),
        ),
        (
            _("Escalations in the range"),
            rates.escalations,
            "",
            _("Cases moved to a later stage (by the sweep, or on a supervisor's approval) in the range."),
        ),
        (_("Escalations today"), rates.escalations_today, "", _("The same, today (business date).")),
        (
            _("Escalations this week"),
            rates.escalations_this_week,
            "",
            _("The same, from Monday of this week to today."),
        ),
    ]
    percent_rows = [f for f in figures if isinstance(f[1], Percent)]
    return Panel(
        key="rates",
        title=_("Rates and escalations"),
        definition=_("Outcomes over the date range. The start of the range is the summary of %(start)s.")
        % {"start": start},
        columns=[_("Figure"), _("Value"), _("Numerator / denominator"), _("Definition")],
        rows=[list(f) for f in figures],
        chart=Chart("bar", [f[0] for f in percent_rows], [(_("Rate (%)"), [f[1] for f in percent_rows])], percent=True),
    )


def activity_panel(period: Period) -> Panel:
    days = daily_activity(period)
    return Panel(
        key="activity",
        title=_("Daily activity"),
        definition=_(
            "Per business day of the range: escalations, cases cured, contact attempts, right-party contacts and "
            "money collected (paid while the loan had a live case). Days with nothing are left out."
        ),
        columns=[_("Date"), _("Escalations"), _("Cured"), _("Contacts"), _("Right-party contacts"), _("Collected")],
        rows=[[d.date, d.escalations, d.cured, d.contacts, d.right_party_contacts, d.collected] for d in days],
        chart=Chart(
            "line",
            [d.date.isoformat() for d in days],
            [
                (_("Escalations"), [d.escalations for d in days]),
                (_("Cured"), [d.cured for d in days]),
                (_("Contacts"), [d.contacts for d in days]),
            ],
        ),
    )


SHORT = {AgingBucket.M1: "M1", AgingBucket.M2: "M2", AgingBucket.M3: "M3", AgingBucket.M3_PLUS: "M3+"}


def roll_rates_panel(period: Period) -> Panel:
    rolls = roll_rates(period)
    labels = dict(AgingBucket.choices)
    months = sorted({r.month for r in rolls})
    forward = [
        (AgingBucket.M1, AgingBucket.M2),
        (AgingBucket.M2, AgingBucket.M3),
        (AgingBucket.M3, AgingBucket.M3_PLUS),
    ]
    rates = {(r.month, r.from_bucket, r.to_bucket): r.rate for r in rolls}
    # A month with cases in the from-bucket but none rolled forward rolled 0%; a month
    # without any cases in it has no rate at all (a gap in the line, not a zero).
    started = {(r.month, r.from_bucket) for r in rolls}

    def forward_rate(month: dt.date, a: str, b: str) -> Percent:
        if (month, a) not in started:
            return Percent(None)
        return Percent(rates.get((month, a, b), 0.0))

    return Panel(
        key="roll_rates",
        title=_("Roll rates"),
        definition=_(
            "Month over month: of the cases in a bucket at the end of the previous month, the share found in each "
            "bucket at the end of the month (for the current month: today). M1 to M2, M2 to M3 and M3 to M3+ are "
            "the forward rolls; to Cured means paid back to 0 days past due, to Closed means closed unpaid. "
            "Every month of the range is shown, and at least the last six."
        ),
        columns=[_("Month"), _("From"), _("To"), _("Cases"), _("Roll rate")],
        rows=[
            [
                r.month.strftime("%Y-%m"),
                str(labels[r.from_bucket]),
                str(labels[r.to_bucket]),
                r.case_count,
                Percent(r.rate),
            ]
            for r in rolls
        ],
        chart=Chart(
            "line",
            [m.strftime("%Y-%m") for m in months],
            [(f"{SHORT[a]} → {SHORT[b]}", [forward_rate(m, a, b) for m in months]) for a, b in forward],
            percent=True,
        ),
    )


def collectors_panel(period: Period) -> Panel:
    people = collector_productivity(period)
    return Panel(
        key="collectors",
        title=_("Collector productivity"),
        definition=_(
            "Per collector over the range: contact attempts they logged, right-party contacts among them, promises "
            "to pay they recorded, and money paid on the loans of cases assigned to them (while the case was live)."
        ),
        columns=[
            _("Collector"),
            _("Contacts"),
            _("Right-party contacts"),
            _("Right-party-contact rate"),
            _("Promises"),
            _("Collected"),
        ],
        rows=[
            [p.name, p.contacts, p.right_party_contacts, Percent(p.right_party_contact_rate), p.promises, p.collected]
            for p in people
        ],
        chart=Chart("bar", [p.name for p in people], [(_("Collected"), [p.collected for p in people])]),
    )


# The export lists the oldest requests; the approvals page pages through all of them.
APPROVALS_EXPORT_LIMIT = 5000


def approvals_panel(period: Period) -> Panel:
    cases = list(approvals_waiting()[:APPROVALS_EXPORT_LIMIT])
    return Panel(
        key="approvals",
        title=_("Approvals waiting"),
        definition=_(
            "Cases waiting for a supervisor to approve their next stage (litigation), oldest request first "
            "(at most the oldest %(limit)s)."
        )
        % {"limit": f"{APPROVALS_EXPORT_LIMIT:,}"},
        columns=[_("Case"), _("Loan"), _("Borrower"), _("Stage"), _("Waiting for"), _("Days past due"), _("Asked at")],
        rows=[
            [
                c.pk,
                c.loan.external_id,
                c.loan.borrower.name,
                c.stage.display_name if c.stage else "",
                c.pending_stage.display_name if c.pending_stage else "",
                c.days_past_due,
                c.approval_requested_at.isoformat() if c.approval_requested_at else "",
            ]
            for c in cases
        ],
    )


register_dashboard_panel("funnel", funnel_panel, order=10)
register_dashboard_panel("aging", aging_panel, order=20)
register_dashboard_panel("rates", rates_panel, order=30)
register_dashboard_panel("roll_rates", roll_rates_panel, order=40)
register_dashboard_panel("activity", activity_panel, order=50)
register_dashboard_panel("collectors", collectors_panel, order=60)
register_dashboard_panel("approvals", approvals_panel, on_page=False)
