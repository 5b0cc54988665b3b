"""The escalation sweep: CONTRACT sections 3 and 4 applied to every loan at once.

Set-based and batched. Loans are taken in id ranges of ``COLLECTIONS_BATCH_SIZE``; each
range is one transaction of a fixed number of SQL statements, whatever the number of
cases in it:

1. days past due, outstanding and overdue amounts of the range's loans, computed by one
   GROUP BY over installments into a temporary table;
2. new cases for loans that reached the first stage (``INSERT ... ON CONFLICT DO NOTHING``
   against the one-live-case-per-loan index);
3. the metrics of live cases refreshed; cases back at DPD 0 resolved;
4. holds past their end date released; promises and payment plans settled as kept or
   broken;
5. stage transitions as conditional bulk UPDATEs (``WHERE stage = old AND status =
   'open'``) joined to a small table of (from stage, DPD range) → to stage, then the gates
   (stages that require approval) and the repeats;
6. events written in bulk from the rows the UPDATEs returned, and the batch of stage
   entries handed to the registered stage-action handlers, in the same transaction.

Why a second or a concurrent sweep changes nothing: every write is conditional on the
state it changes (an UPDATE matches only rows still in the old state, an INSERT meets the
unique index), and events are written only for the rows an UPDATE actually returned. Two
sweeps racing on the same rows serialise on the row locks; PostgreSQL re-checks the
WHERE clause of the second UPDATE against the committed row and skips it. On top of
that, a PostgreSQL advisory lock makes concurrent sweeps run one after the other, so the
second one's summary honestly reports no changes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cases.actions import StageEntry, run_stage_actions
from cases.models import CaseEvent, EventKind, Stage, SweepRun
from cases.signals import cases_resolved

from .assignment import collectors_rebalance_inactive

logger = logging.getLogger(__name__)

# Any constant shared by every sweep process; pg_advisory_lock takes a 64-bit key.
SWEEP_LOCK_KEY = 0x5EE9_C011
LIVE = ("open", "on_hold", "awaiting_approval")


@dataclass
class SweepSummary:
    as_of: dt.date
    dry_run: bool = False
    opened: int = 0
    escalated: Counter = field(default_factory=Counter)
    awaiting_approval: int = 0
    resolved: int = 0
    held: int = 0
    unheld: int = 0
    holds_released: int = 0
    promises_kept: int = 0
    promises_broken: int = 0
    plans_kept: int = 0
    plans_broken: int = 0
    repeats: int = 0
    actions: Counter = field(default_factory=Counter)
    refreshed: int = 0
    reassigned: int = 0
    batches: int = 0
    statements: int = 0
    skipped: str = ""

    @property
    def changed(self) -> bool:
        return any(
            (
                self.opened,
                sum(self.escalated.values()),
                self.awaiting_approval,
                self.resolved,
                self.holds_released,
                self.promises_kept,
                self.promises_broken,
                self.plans_kept,
                self.plans_broken,
                self.repeats,
                self.refreshed,
                self.reassigned,
                self.held,
                self.unheld,
            )
        )

    def add(self, other: SweepSummary) -> None:
        for name in (
            "opened",
            "awaiting_approval",
            "resolved",
            "held",
            "unheld",
            "holds_released",
            "promises_kept",
            "promises_broken",
            "plans_kept",
            "plans_broken",
            "repeats",
            "refreshed",
            "batches",
            "statements",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.escalated.update(other.escalated)
        self.actions.update(other.actions)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["escalated"] = dict(self.escalated)
        data["actions"] = dict(self.actions)
        return data


# --- SQL that differs between PostgreSQL and SQLite (the demo database) -----------------


def _sql_days_since(date_sql: str) -> str:
    """Whole days from the date expression to %(as_of)s, never negative."""
    if connection.vendor == "postgresql":
        return f"GREATEST(0, %(as_of)s::date - ({date_sql}))"
    return f"MAX(0, CAST(julianday(%(as_of)s) - julianday({date_sql}) AS INTEGER))"


def _sql_as_of_minus(days_sql: str) -> str:
    """The date %(as_of)s minus an integer number of days."""
    if connection.vendor == "postgresql":
        return f"(%(as_of)s::date - ({days_sql}))"
    return f"date(%(as_of)s, '-' || ({days_sql}) || ' days')"


def _sql_deadline(date_sql: str, days_sql: str) -> str:
    """Midnight in the business time zone ending the day ``date + days``: the first instant
    that is too late. (SQLite, the demo's database, keeps times in UTC: midnight UTC there.)"""
    if connection.vendor == "postgresql":
        return f"((({date_sql}) + ({days_sql}) + 1)::timestamp AT TIME ZONE %(tz)s)"
    return f"datetime({date_sql}, '+' || (({days_sql}) + 1) || ' days')"


def _sql_same(left: str, right: str) -> str:
    """NULL-safe equality."""
    return f"{left} IS NOT DISTINCT FROM {right}" if connection.vendor == "postgresql" else f"{left} IS {right}"


# --- The stage map -----------------------------------------------------------------------


@dataclass(frozen=True)
class StageMap:
    """Where a case may go from each stage, precomputed from the (few) active stage rules.

    ``moves``: (from stage id or None, to stage id, lowest DPD, DPD bound or None). From a
    given stage the ranges do not overlap, so each case matches at most one row. A stage
    that requires approval is never a target: it is a gate, listed in ``gates`` as (from
    stage id or None, gate stage id, gate's entry DPD); nothing above a gate is reachable
    until the gate is approved.
    """

    stages: dict[int, Stage]
    moves: list[tuple[int | None, int, int, int | None]]
    gates: list[tuple[int | None, int, int]]
    first_entry_dpd: int | None
    actions: dict[int, list[str]]

    @classmethod
    def build(cls) -> StageMap:
        every_stage = list(Stage.objects.order_by("order"))
        active = [s for s in every_stage if s.active]
        moves: list[tuple[int | None, int, int, int | None]] = []
        gates: list[tuple[int | None, int, int]] = []
        # Moves start from every stage, inactive ones included: a case sitting in a stage
        # an admin switched off must still move on to the active stages above it.
        for current in [None, *every_stage]:
            current_order = current.order if current else 0
            reachable: list[Stage] = []
            for stage in (s for s in active if s.order > current_order):
                if stage.requires_approval:
                    gates.append((current.pk if current else None, stage.pk, stage.entry_dpd))
                    break
                reachable.append(stage)
            for position, stage in enumerate(reachable):
                bound = reachable[position + 1].entry_dpd if position + 1 < len(reachable) else None
                moves.append((current.pk if current else None, stage.pk, stage.entry_dpd, bound))
        return cls(
            stages={s.pk: s for s in every_stage},
            moves=moves,
            gates=gates,
            first_entry_dpd=active[0].entry_dpd if active else None,
            actions={s.pk: list(s.entry_actions) for s in active},
        )

    def repeat_stages(self) -> list[Stage]:
        return [s for s in self.stages.values() if s.active and s.repeat_interval_days]


# --- One batch -------------------------------------------------------------------------


class _Batch:
    """The statements for one range of loan ids, run inside one transaction."""

    def __init__(
        self,
        *,
        stage_map: StageMap,
        as_of: dt.date,
        now: dt.datetime,
        lo: int | None,
        hi: int | None,
        actor_id=None,
        lock_loans: bool = True,
    ):
        self.lock_loans = lock_loans
        self.map = stage_map
        self.now = now
        self.actor_id = actor_id
        self.params: dict[str, Any] = {"as_of": as_of, "now": now, "lo": lo, "hi": hi, "tz": settings.TIME_ZONE}
        self.summary = SweepSummary(as_of=as_of)
        self.events: list[CaseEvent] = []
        self.entries: list[StageEntry] = []
        self.cursor = connection.cursor()
        # Which cases the statements touch: a range of loan ids, or every case (the
        # housekeeping phase of a full sweep, which only touches the few rows it changes).
        self.scope = "TRUE" if lo is None else "cases_case.loan_id BETWEEN %(lo)s AND %(hi)s"

    def execute(self, sql: str, params: dict[str, Any] | None = None, *, fetch: bool = False) -> list[tuple]:
        self.summary.statements += 1
        self.cursor.execute(sql, {**self.params, **(params or {})})
        return self.cursor.fetchall() if fetch else []

    def event(self, case_id: int, kind: str, detail: dict[str, Any]) -> None:
        self.events.append(CaseEvent(case_id=case_id, kind=kind, detail=detail, at=self.now, actor_id=self.actor_id))

    def run(self, *, housekeeping: bool = True, loans: bool = True) -> SweepSummary:
        if housekeeping:
            self.release_holds()
            self.settle_promises()
            self.settle_plans()
            self.sync_hold_status()
        if loans:
            self.balances()
            self.open_cases()
            self.refresh_and_resolve()
            self.move_stages()
            self.gate_stages()
            self.repeat_stages()
            self.execute("DROP TABLE IF EXISTS sweep_balance")
        CaseEvent.objects.bulk_create(self.events, batch_size=2000)
        self.summary.statements += (len(self.events) + 1999) // 2000
        if self.entries:
            self.summary.actions.update(run_stage_actions(self.entries, self.map.actions))
        self.summary.batches = 1 if loans else 0
        return self.summary

    # 1. balances -------------------------------------------------------------------------
    def balances(self) -> None:
        if self.lock_loans and connection.vendor == "postgresql":
            # Lock the range's loans for this short transaction: a payment being recorded
            # meanwhile (it locks its loan first too) waits instead of having its fresh
            # balance overwritten with the one computed here a moment earlier.
            self.execute("SELECT id FROM cases_loan WHERE id BETWEEN %(lo)s AND %(hi)s ORDER BY id FOR UPDATE")
        self.execute("DROP TABLE IF EXISTS sweep_balance")
        oldest = "MIN(i.due_date) FILTER (WHERE i.paid_amount < i.amount)"
        self.execute(
            f"""
            CREATE TEMP TABLE sweep_balance AS
            SELECT loan_id, COALESCE({_sql_days_since("oldest")}, 0) AS dpd, outstanding, overdue
            FROM (
                SELECT i.loan_id,
                       {oldest} AS oldest,
                       ROUND(SUM(i.amount - i.paid_amount), 2) AS outstanding,
                       ROUND(COALESCE(SUM(i.amount - i.paid_amount) FILTER (WHERE i.due_date < %(as_of)s), 0), 2)
                           AS overdue
                FROM cases_installment i
                WHERE i.loan_id BETWEEN %(lo)s AND %(hi)s
                GROUP BY i.loan_id
            ) per_loan
            """
        )

    # 2. open ---------------------------------------------------------------------------
    def open_cases(self) -> None:
        if self.map.first_entry_dpd is None:
            return
        rows = self.execute(
            """
            INSERT INTO cases_case (loan_id, status, days_past_due, outstanding, overdue_amount, priority,
                                    opened_at, updated_at, repeat_count)
            SELECT b.loan_id, 'open', b.dpd, b.outstanding, b.overdue, 0, %(now)s, %(now)s, 0
            FROM sweep_balance b
            WHERE b.dpd >= %(first)s
              AND NOT EXISTS (SELECT 1 FROM cases_case c
                              WHERE c.loan_id = b.loan_id AND c.status IN ('open', 'on_hold', 'awaiting_approval'))
            ON CONFLICT (loan_id) WHERE status IN ('open', 'on_hold', 'awaiting_approval') DO NOTHING
            RETURNING id, days_past_due
            """,
            {"first": self.map.first_entry_dpd},
            fetch=True,
        )
        for case_id, dpd in rows:
            self.event(case_id, EventKind.OPENED, {"days_past_due": dpd})
        self.summary.opened += len(rows)

    # 3. refresh and resolve ------------------------------------------------------------
    def refresh_and_resolve(self) -> None:
        priority = priority_sql(days_past_due="b.dpd", outstanding="b.outstanding")
        rows = self.execute(
            f"""
            UPDATE cases_case SET days_past_due = b.dpd, outstanding = b.outstanding,
                                  overdue_amount = b.overdue, priority = {priority}, updated_at = %(now)s
            FROM sweep_balance b
            WHERE cases_case.loan_id = b.loan_id
              AND cases_case.status IN ('open', 'on_hold', 'awaiting_approval')
              AND (cases_case.days_past_due <> b.dpd OR cases_case.outstanding <> b.outstanding
                   OR cases_case.overdue_amount <> b.overdue OR cases_case.priority <> {priority})
            RETURNING cases_case.id
            """,
            fetch=True,
        )
        self.summary.refreshed += len(rows)
        resolved = self.execute(
            """
            UPDATE cases_case SET status = 'resolved', resolved_at = %(now)s, updated_at = %(now)s
            WHERE loan_id BETWEEN %(lo)s AND %(hi)s
              AND status IN ('open', 'on_hold', 'awaiting_approval') AND days_past_due = 0
            RETURNING id
            """,
            fetch=True,
        )
        ids = [row[0] for row in resolved]
        if not ids:
            return
        for case_id in ids:
            self.event(case_id, EventKind.RESOLVED, {"reason": "days_past_due_zero"})
        # A cured case keeps its word: pending promises and live plans count as kept, on
        # the timeline like every other change.
        for case_id, promise_id in self._in_update_ids(
            "UPDATE cases_promisetopay SET status = 'kept', settled_at = %(now)s WHERE status = 'pending' AND case_id",
            ids,
            returning="case_id, id",
        ):
            self.event(case_id, EventKind.PROMISE_KEPT, {"promise": promise_id, "why": "resolved"})
            self.summary.promises_kept += 1
        for case_id, plan_id in self._in_update_ids(
            "UPDATE cases_paymentplan SET status = 'kept', settled_at = %(now)s "
            "WHERE status IN ('proposed', 'active') AND case_id",
            ids,
            returning="case_id, id",
        ):
            self.event(case_id, EventKind.PLAN_KEPT, {"plan": plan_id, "why": "resolved"})
            self.summary.plans_kept += 1
        self.summary.resolved += len(ids)
        cases_resolved.send(sender=_Batch, case_ids=ids, reason="resolved")

    def _in_update(self, sql_before_in: str, ids: list[int], returning: str = "") -> list[tuple]:
        """SQLite has no tuple parameters: spell the IN list out as named parameters."""
        names = {f"id{n}": value for n, value in enumerate(ids)}
        placeholders = ", ".join(f"%({name})s" for name in names)
        tail = f" RETURNING {returning}" if returning else ""
        return self.execute(f"{sql_before_in} IN ({placeholders}){tail}", names, fetch=bool(returning))

    # 4. holds, promises, plans ---------------------------------------------------------
    def release_holds(self) -> None:
        rows = self.execute(
            f"""
            UPDATE cases_hold SET released_at = %(now)s
            WHERE released_at IS NULL AND ends_on < %(as_of)s
              AND case_id IN (SELECT cases_case.id FROM cases_case WHERE {self.scope})
            RETURNING case_id, id, reason
            """,
            fetch=True,
        )
        for case_id, hold_id, reason in rows:
            self.event(case_id, EventKind.HOLD_RELEASED, {"hold": hold_id, "reason": reason, "why": "ended"})
        self.summary.holds_released += len(rows)

    def settle_promises(self) -> None:
        # Kept as soon as the payments made since the promise reach its amount; broken once
        # its date plus the grace days has passed without that. Only payments made by the
        # deadline count: a late payment does not turn a broken promise into a kept one.
        grace = _policy_grace_days()
        paid_since = f"""(SELECT COALESCE(SUM(pay.amount), 0) FROM cases_payment pay
                          JOIN cases_case c ON c.loan_id = pay.loan_id
                          WHERE c.id = cases_promisetopay.case_id AND pay.paid_at >= cases_promisetopay.created_at
                            AND pay.paid_at < {_sql_deadline("cases_promisetopay.due_date", "%(grace)s")})"""
        rows = self.execute(
            f"""
            UPDATE cases_promisetopay SET
                status = CASE WHEN {paid_since} >= cases_promisetopay.amount THEN 'kept' ELSE 'broken' END,
                settled_at = %(now)s
            WHERE status = 'pending'
              AND case_id IN (SELECT cases_case.id FROM cases_case WHERE {self.scope}
                              AND cases_case.status IN ('open', 'on_hold', 'awaiting_approval'))
              AND (due_date < {_sql_as_of_minus("%(grace)s")} OR {paid_since} >= cases_promisetopay.amount)
            RETURNING case_id, id, status
            """,
            {"grace": grace},
            fetch=True,
        )
        broken = []
        for case_id, promise_id, status in rows:
            kind = EventKind.PROMISE_KEPT if status == "kept" else EventKind.PROMISE_BROKEN
            self.event(case_id, kind, {"promise": promise_id})
            if status == "broken":
                broken.append(case_id)
                self.summary.promises_broken += 1
            else:
                self.summary.promises_kept += 1
        if broken:
            # A broken promise ends the pause at once: escalation resumes in this very batch.
            self._in_update_ids("UPDATE cases_case SET paused_until = NULL WHERE id", broken)

    def settle_plans(self) -> None:
        # A plan is broken when the payments made since it started fall short of the plan
        # installments already due (plus grace), kept when they reach its total.
        grace = _policy_grace_days()
        paid_since = """(SELECT COALESCE(SUM(pay.amount), 0) FROM cases_payment pay
                          JOIN cases_case c ON c.loan_id = pay.loan_id
                          WHERE c.id = cases_paymentplan.case_id AND pay.paid_at >= cases_paymentplan.created_at)"""
        due_so_far = f"""(SELECT COALESCE(SUM(pi.amount), 0) FROM cases_planinstallment pi
                           WHERE pi.plan_id = cases_paymentplan.id AND pi.due_date < {_sql_as_of_minus("%(grace)s")})"""
        rows = self.execute(
            f"""
            UPDATE cases_paymentplan SET
                status = CASE WHEN {paid_since} >= cases_paymentplan.total_amount THEN 'kept' ELSE 'broken' END,
                settled_at = %(now)s
            WHERE status = 'active'
              AND case_id IN (SELECT cases_case.id FROM cases_case WHERE {self.scope}
                              AND cases_case.status IN ('open', 'on_hold', 'awaiting_approval'))
              AND ({paid_since} >= cases_paymentplan.total_amount OR {paid_since} < {due_so_far})
            RETURNING case_id, id, status
            """,
            {"grace": grace},
            fetch=True,
        )
        for case_id, plan_id, status in rows:
            if status == "kept":
                self.event(case_id, EventKind.PLAN_KEPT, {"plan": plan_id})
                self.summary.plans_kept += 1
            else:
                self.event(case_id, EventKind.PLAN_BROKEN, {"plan": plan_id})
                self.summary.plans_broken += 1

    def _in_update_ids(self, sql_before_in: str, ids: list[int], returning: str = "") -> list[tuple]:
        if connection.vendor != "postgresql":
            return self._in_update(sql_before_in, ids, returning)
        tail = f" RETURNING {returning}" if returning else ""
        return self.execute(f"{sql_before_in} IN %(ids)s{tail}", {"ids": tuple(ids)}, fetch=bool(returning))

    def sync_hold_status(self) -> None:
        # Driven from the (few) active holds through their partial index, not from the cases.
        held_ids = """(SELECT h.case_id FROM cases_hold h
                       WHERE h.released_at IS NULL AND (h.ends_on IS NULL OR h.ends_on >= %(as_of)s))"""
        held = self.execute(
            f"""
            UPDATE cases_case SET status = 'on_hold', updated_at = %(now)s
            WHERE {self.scope} AND status IN ('open', 'awaiting_approval') AND cases_case.id IN {held_ids}
            RETURNING id
            """,
            fetch=True,
        )
        unheld = self.execute(
            f"""
            UPDATE cases_case
            SET status = CASE WHEN pending_stage_id IS NULL THEN 'open' ELSE 'awaiting_approval' END,
                updated_at = %(now)s
            WHERE {self.scope} AND status = 'on_hold' AND cases_case.id NOT IN {held_ids}
            RETURNING id
            """,
            fetch=True,
        )
        self.summary.held += len(held)
        self.summary.unheld += len(unheld)

    # 5. stages -------------------------------------------------------------------------
    def _movable(self) -> str:
        """Cases the sweep may move: open, not paused by a promise, no live payment plan."""
        return """
            cases_case.loan_id BETWEEN %(lo)s AND %(hi)s
            AND cases_case.status = 'open'
            AND (cases_case.paused_until IS NULL OR cases_case.paused_until < %(as_of)s)
            AND NOT EXISTS (SELECT 1 FROM cases_paymentplan pp
                            WHERE pp.case_id = cases_case.id AND pp.status = 'active')
        """

    def _values(self, rows: list[tuple], names: tuple[str, ...], prefix: str) -> tuple[str, dict[str, Any]]:
        """A VALUES list with named parameters (typed for PostgreSQL)."""
        casts = {"from_stage": "::bigint", "to_stage": "::bigint", "lo_dpd": "::integer", "hi_dpd": "::integer"}
        params: dict[str, Any] = {}
        tuples = []
        for n, row in enumerate(rows):
            cells = []
            for name, value in zip(names, row, strict=True):
                key = f"{prefix}{n}_{name}"
                params[key] = value
                cast = casts.get(name, "") if connection.vendor == "postgresql" else ""
                cells.append(f"%({key})s{cast}")
            tuples.append(f"({', '.join(cells)})")
        return "VALUES " + ", ".join(tuples), params

    def move_stages(self) -> None:
        if not self.map.moves:
            return
        values, params = self._values(self.map.moves, ("from_stage", "to_stage", "lo_dpd", "hi_dpd"), "m")
        where = f"""
            {_sql_same("cases_case.stage_id", "moves.from_stage")}
            AND cases_case.days_past_due >= moves.lo_dpd
            AND (moves.hi_dpd IS NULL OR cases_case.days_past_due < moves.hi_dpd)
            AND {self._movable()}
        """
        cte = f"WITH moves (from_stage, to_stage, lo_dpd, hi_dpd) AS ({values})"
        update = f"""
            {cte}
            UPDATE cases_case SET stage_id = moves.to_stage, stage_entered_at = %(now)s,
                                  stage_entered_on = %(as_of)s, repeat_count = 0, updated_at = %(now)s
            FROM moves WHERE {where}
        """
        if connection.vendor == "postgresql":
            rows = self.execute(
                update + " RETURNING cases_case.id, cases_case.loan_id, moves.from_stage, moves.to_stage, "
                "cases_case.days_past_due",
                params,
                fetch=True,
            )
        else:
            # SQLite's RETURNING cannot name the FROM table: read the old stages first. Its
            # transactions take the write lock at BEGIN, so nothing changes in between.
            before = dict(
                self.execute(
                    f"{cte} SELECT cases_case.id, cases_case.stage_id FROM cases_case, moves WHERE {where}",
                    params,
                    fetch=True,
                )
            )
            rows = [
                (case_id, loan_id, before.get(case_id), to_id, dpd)
                for case_id, loan_id, to_id, dpd in self.execute(
                    update + " RETURNING id, loan_id, stage_id, days_past_due", params, fetch=True
                )
            ]
        stages = self.map.stages
        for case_id, loan_id, from_id, to_id, dpd in rows:
            previous = stages[from_id].code if from_id in stages else None
            target = stages[to_id]
            self.event(case_id, EventKind.STAGE_CHANGED, {"from": previous, "to": target.code, "days_past_due": dpd})
            self.entries.append(
                StageEntry(
                    case_id=case_id,
                    loan_id=loan_id,
                    stage_id=to_id,
                    stage_code=target.code,
                    previous_stage_code=previous,
                    entered_at=self.now,
                    actor_id=self.actor_id,
                    entered_on=self.params["as_of"],
                )
            )
            self.summary.escalated[target.code] += 1

    def gate_stages(self) -> None:
        if not self.map.gates:
            return
        values, params = self._values(self.map.gates, ("from_stage", "to_stage", "lo_dpd"), "g")
        rows = self.execute(
            f"""
            WITH gates (from_stage, to_stage, lo_dpd) AS ({values})
            UPDATE cases_case SET status = 'awaiting_approval', pending_stage_id = gates.to_stage,
                                  approval_requested_at = %(now)s, approval_requested_by_id = NULL,
                                  updated_at = %(now)s
            FROM gates
            WHERE {_sql_same("cases_case.stage_id", "gates.from_stage")}
              AND cases_case.days_past_due >= gates.lo_dpd
              AND cases_case.pending_stage_id IS NULL
              AND (cases_case.gate_snoozed_until IS NULL OR cases_case.gate_snoozed_until < %(as_of)s)
              AND {self._movable()}
            RETURNING cases_case.id, cases_case.pending_stage_id, cases_case.days_past_due
            """,
            params,
            fetch=True,
        )
        for case_id, gate_id, dpd in rows:
            self.event(
                case_id, EventKind.AWAITING_APPROVAL, {"stage": self.map.stages[gate_id].code, "days_past_due": dpd}
            )
        self.summary.awaiting_approval += len(rows)

    def repeat_stages(self) -> None:
        for stage in self.map.repeat_stages():
            # The n-th repeat is due `n * interval` days after the stage was entered; one
            # step per sweep at most, so a missed day never fires a burst of messages.
            rows = self.execute(
                f"""
                UPDATE cases_case SET repeat_count = repeat_count + 1, updated_at = %(now)s
                WHERE stage_id = %(stage)s
                  AND stage_entered_on <= {_sql_as_of_minus("%(interval)s * (repeat_count + 1)")}
                  AND {self._movable()}
                RETURNING id, loan_id, repeat_count
                """,
                {"stage": stage.pk, "interval": stage.repeat_interval_days},
                fetch=True,
            )
            for case_id, loan_id, number in rows:
                self.entries.append(
                    StageEntry(
                        case_id=case_id,
                        loan_id=loan_id,
                        stage_id=stage.pk,
                        stage_code=stage.code,
                        previous_stage_code=stage.code,
                        entered_at=self.now,
                        repeat_number=number,
                        actor_id=self.actor_id,
                        entered_on=self.params["as_of"],
                    )
                )
            self.summary.repeats += len(rows)


# The work-queue priority (higher first), kept up to date by the sweep. Each part is
# capped so no single factor drowns the others:
#   days past due, up to 180 points;
#   outstanding balance, 1 point per 100 units of currency, up to 300 points;
#   broken promises on the case, 50 points each, up to 150;
#   days since the last contact (or since opening when never contacted), up to 30 points.
PRIORITY_SQL = """(
    CASE WHEN {days_past_due} > 180 THEN 180 ELSE {days_past_due} END
    + CASE WHEN {outstanding} >= 30000 THEN 300 ELSE CAST({outstanding} / 100 AS INTEGER) END
    + (SELECT CASE WHEN COUNT(*) > 3 THEN 150 ELSE 50 * COUNT(*) END FROM cases_promisetopay bp
       WHERE bp.case_id = cases_case.id AND bp.status = 'broken')
    + {days_since_contact}
)"""


def priority_sql(*, days_past_due: str, outstanding: str) -> str:
    return PRIORITY_SQL.format(
        days_past_due=days_past_due, outstanding=outstanding, days_since_contact=_days_since_contact_sql()
    )


def _days_since_contact_sql() -> str:
    if connection.vendor == "postgresql":
        since = (
            "LEAST(30, GREATEST(0, %(as_of)s::date - "
            "(COALESCE(cases_case.last_contact_at, cases_case.opened_at) AT TIME ZONE %(tz)s)::date))"
        )
    else:
        since = (
            "MIN(30, MAX(0, CAST(julianday(%(as_of)s) - "
            "julianday(date(COALESCE(cases_case.last_contact_at, cases_case.opened_at))) AS INTEGER)))"
        )
    return since


def _policy_grace_days() -> int:
    # The policy lives in notifications, which cases must not import; read the one column.
    with connection.cursor() as cursor:
        cursor.execute("SELECT promise_grace_days FROM notifications_compliancepolicy WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else 1


# --- Entry points ----------------------------------------------------------------------


def _loan_ranges(batch_size: int) -> Iterator[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT MIN(id), MAX(id) FROM cases_loan")
        low, high = cursor.fetchone()
    if low is None:
        return
    start = low
    while start <= high:
        yield start, start + batch_size - 1
        start += batch_size


class _DryRunRollback(Exception):
    pass


def sweep_batch(
    *,
    as_of: dt.date,
    lo: int | None,
    hi: int | None,
    now: dt.datetime | None = None,
    stage_map: StageMap | None = None,
    actor=None,
    dry_run: bool = False,
    housekeeping: bool = True,
    loans: bool = True,
    lock_loans: bool = True,
) -> SweepSummary:
    """Sweep the loans with ids lo..hi in one transaction (a dry run rolls it back).

    ``housekeeping`` (holds, promises, plans) and ``loans`` (balances, opening, moving)
    select the phases; a full sweep runs housekeeping once over every case (lo and hi
    None), then the loan phase range by range.
    """
    batch = _Batch(
        stage_map=stage_map or StageMap.build(),
        as_of=as_of,
        now=now or timezone.now(),
        lo=lo,
        hi=hi,
        actor_id=getattr(actor, "pk", None),
        lock_loans=lock_loans and not dry_run,
    )
    try:
        with transaction.atomic():
            summary = batch.run(housekeeping=housekeeping, loans=loans)
            if dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    finally:
        batch.cursor.close()
    return batch.summary if dry_run else summary


def sweep_run(
    *,
    as_of: dt.date,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepSummary:
    """One sweep over every loan: what beat runs and `manage.py escalate` calls."""
    now = now or timezone.now()
    batch_size = batch_size or settings.COLLECTIONS_BATCH_SIZE
    total = SweepSummary(as_of=as_of, dry_run=dry_run)
    with _sweep_lock():
        last = SweepRun.objects.filter(dry_run=False, finished_at__isnull=False).order_by("-as_of").first()
        if last is not None and as_of < last.as_of:
            total.skipped = (
                f"Business date {as_of} is earlier than the last sweep's ({last.as_of}); nothing was changed. "
                "Days past due only move forward with the calendar."
            )
            return total
        if dry_run:
            # One transaction for the whole dry run, rolled back at the end, so that what
            # housekeeping unlocks (an ended hold, a broken plan) shows in the moves. No
            # loan locks: nothing it reads is kept, so a stale read costs nothing.
            try:
                with transaction.atomic():
                    _sweep_phases(total, as_of=as_of, now=now, batch_size=batch_size, progress=progress, lock=False)
                    raise _DryRunRollback
            except _DryRunRollback:
                pass
            return total
        run = SweepRun.objects.create(as_of=as_of, started_at=now)
        _sweep_phases(total, as_of=as_of, now=now, batch_size=batch_size, progress=progress, lock=True)
        run.finished_at = timezone.now()
        run.summary = total.as_dict()
        run.save(update_fields=["finished_at", "summary"])
    return total


def _sweep_phases(
    total: SweepSummary,
    *,
    as_of: dt.date,
    now: dt.datetime,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    lock: bool,
) -> None:
    stage_map = StageMap.build()
    # Holds, promises and plans first, over every case at once (few rows change, and
    # their partial indexes find them), so a broken promise resumes escalation below.
    total.add(sweep_batch(as_of=as_of, lo=None, hi=None, now=now, stage_map=stage_map, loans=False))
    ranges = list(_loan_ranges(batch_size))
    for number, (lo, hi) in enumerate(ranges, start=1):
        total.add(
            sweep_batch(as_of=as_of, lo=lo, hi=hi, now=now, stage_map=stage_map, housekeeping=False, lock_loans=lock)
        )
        if progress:
            progress(number, len(ranges))
    # Housekeeping that is not per loan: cases held by collectors made inactive.
    total.reassigned = collectors_rebalance_inactive(now=now)


class _sweep_lock:
    """Run concurrent sweeps one after the other (PostgreSQL advisory lock, session level).

    Correctness does not depend on it (see the module docstring); it keeps a second,
    simultaneous sweep from doing the same reads in parallel and reporting half the work.
    SQLite, the demo's database, serialises writers by itself.
    """

    def __init__(self) -> None:
        # Tests switch the lock off to show that the conditional writes alone keep two
        # simultaneous sweeps correct.
        self.enabled = connection.vendor == "postgresql" and getattr(settings, "COLLECTIONS_SWEEP_LOCK", True)

    def __enter__(self):
        if self.enabled:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [SWEEP_LOCK_KEY])
        return self

    def __exit__(self, *exc):
        if self.enabled:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [SWEEP_LOCK_KEY])
        return False
