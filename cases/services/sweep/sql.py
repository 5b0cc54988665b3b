"""SQL fragments that differ between PostgreSQL and SQLite (the demo database), and the
work-queue priority score that the sweep keeps up to date."""

from __future__ import annotations

from django.db import connection

LIVE_SQL = "('open', 'on_hold', 'awaiting_approval')"


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def sql_days_since(date_sql: str) -> str:
    """Whole days from the date expression to %(as_of)s, never negative."""
    if is_postgresql():
        return f"GREATEST(0, %(as_of)s::date - ({date_sql}))"
    return f"MAX(0, CAST(julianday(%(as_of)s) - julianday({date_sql}) AS INTEGER))"


def sql_as_of_minus(days_sql: str) -> str:
    """The date %(as_of)s minus an integer number of days."""
    if is_postgresql():
        return f"(%(as_of)s::date - ({days_sql}))"
    return f"date(%(as_of)s, '-' || ({days_sql}) || ' days')"


def sql_deadline(date_sql: str, days_sql: str) -> str:
    """Midnight in the business time zone ending the day ``date + days``: the first instant
    that is too late. (SQLite, the demo's database, keeps times in UTC: midnight UTC there.)"""
    if is_postgresql():
        return f"((({date_sql}) + ({days_sql}) + 1)::timestamp AT TIME ZONE %(tz)s)"
    return f"datetime({date_sql}, '+' || (({days_sql}) + 1) || ' days')"


def sql_same(left: str, right: str) -> str:
    """NULL-safe equality."""
    return f"{left} IS NOT DISTINCT FROM {right}" if is_postgresql() else f"{left} IS {right}"


# The work-queue priority (higher first), kept up to date by the sweep. Each part is
# capped so no single factor drowns the others:
#   days past due, up to 180 points;
#   outstanding balance, 1 point per 100 units of currency, up to 300 points;
#   broken promises on the case, 50 points each, up to 150;
#   days since the last contact (or since opening when never contacted), up to 30 points.
PRIORITY_SQL = """(
    CASE WHEN {days_past_due} > 180 THEN 180 ELSE {days_past_due} END
    + CASE WHEN {outstanding} >= 30000 THEN 300 ELSE CAST({outstanding} / 100 AS INTEGER) END
    + {broken_promises}
    + {days_since_contact}
)"""

BROKEN_PROMISES_SQL = """(SELECT CASE WHEN COUNT(*) > 3 THEN 150 ELSE 50 * COUNT(*) END FROM cases_promisetopay bp
       WHERE bp.case_id = cases_case.id AND bp.status = 'broken')"""


def priority_sql(*, days_past_due: str, outstanding: str, new_case: bool = False) -> str:
    """The priority of a row of ``cases_case`` (``new_case``: of a case that this statement
    opens at %(now)s, which has no promise and no contact yet, so the score needs no
    per-row lookup and is final the moment the row is written)."""
    if new_case:
        broken, since = "0", _days_since_sql("%(now)s")
    else:
        last_touch = "COALESCE(cases_case.last_contact_at, cases_case.opened_at)"
        broken, since = BROKEN_PROMISES_SQL, _days_since_sql(last_touch)
    return PRIORITY_SQL.format(
        days_past_due=days_past_due, outstanding=outstanding, broken_promises=broken, days_since_contact=since
    )


def _days_since_sql(moment_sql: str) -> str:
    """Whole days, 0 to 30, from the business date of a moment to %(as_of)s."""
    if is_postgresql():
        return f"LEAST(30, GREATEST(0, %(as_of)s::date - (({moment_sql})::timestamptz AT TIME ZONE %(tz)s)::date))"
    return f"MIN(30, MAX(0, CAST(julianday(%(as_of)s) - julianday(date({moment_sql})) AS INTEGER)))"
