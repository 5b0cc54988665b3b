"""One batch of the sweep: the statements for one range of loan ids, in one transaction.

On PostgreSQL a batch of the loan phase sends a fixed number of statements, whatever the
number of cases in it: six, plus one for the events of existing cases when any changed,
plus those of the stage-action handlers (a DROP of the temporary table is added when the
batch runs inside an outer transaction: a dry run, a test):

1. the range's loans locked (``SELECT ... FOR UPDATE``);
2. their days past due, outstanding and overdue amounts computed by one GROUP BY over
   installments into a temporary table that is dropped at commit;
3. that table ANALYZEd, so the planner knows its size instead of guessing;
4. live cases refreshed (figures and priority) and those back at DPD 0 resolved, in one
   UPDATE;
5. new cases for loans that reached the first stage, inserted at their final stage (or
   waiting at the approval gate above it) with their final priority (``INSERT ... ON
   CONFLICT DO NOTHING`` against the one-live-case-per-loan index), their events written
   by the same statement (a data-modifying CTE);
6. moves, gates and repeats of existing cases in one conditional UPDATE joined to the
   stage map's transitions (``advance``);
7. the other events, from the rows those statements returned, in one ``INSERT ... SELECT
   FROM unnest(...)``; then the batch of stage entries goes to the registered
   stage-action handlers, in the same transaction.

SQLite (the demo database) runs the same steps with the moves, gates and repeats as three
statements and the events written with ``bulk_create``.

Every statement that reads or writes cases is bounded to the batch's loan-id range, so it
is driven by the index on ``cases_case.loan_id`` and costs the same in the first batch
and in the last, whatever the size of the table.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.db import connection

from cases.actions import StageEntry, run_stage_actions
from cases.models import CaseEvent, EventKind
from cases.signals import cases_resolved

from .housekeeping import HousekeepingMixin
from .sql import LIVE_SQL, is_postgresql, priority_sql, sql_as_of_minus, sql_days_since, sql_same
from .stage_map import StageMap
from .summary import SweepSummary

# SQLite (the demo database) writes events with bulk_create, in chunks of this many rows.
SQLITE_EVENT_CHUNK = 2000


def _no_event(case_id: int, kind: str, detail: dict[str, Any]) -> None:
    """Stands in for ``Batch.event`` where the statement wrote the events itself."""


class Batch(HousekeepingMixin):
    """The statements for one range of loan ids (or, housekeeping only, for every case)."""

    def __init__(
        self,
        *,
        stage_map: StageMap,
        as_of: dt.date,
        now: dt.datetime,
        lo: int | None,
        hi: int | None,
        actor_id: int | None = None,
        lock_loans: bool = True,
        nested: bool = True,
    ):
        self.map = stage_map
        self.now = now
        self.as_of = as_of
        self.actor_id = actor_id
        self.lock_loans = lock_loans
        # The temporary table is dropped at commit on PostgreSQL; inside an outer transaction
        # (a dry run, a test) there is no commit between batches, so it is dropped by hand.
        self.drop_balances = nested or not is_postgresql()
        self.params: dict[str, Any] = {"as_of": as_of, "now": now, "lo": lo, "hi": hi, "tz": settings.TIME_ZONE}
        self.summary = SweepSummary(as_of=as_of)
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.entries: list[StageEntry] = []
        self.cursor = connection.cursor()
        # Which cases the housekeeping statements touch: a range of loan ids, or every case
        # (the housekeeping phase of a full sweep, which only touches the few rows it changes).
        self.scope = "TRUE" if lo is None else "cases_case.loan_id BETWEEN %(lo)s AND %(hi)s"

    def execute(self, sql: str, params: dict[str, Any] | None = None, *, fetch: bool = False) -> list[tuple]:
        self.summary.statements += 1
        self.cursor.execute(sql, {**self.params, **(params or {})})
        return self.cursor.fetchall() if fetch else []

    def event(self, case_id: int, kind: str, detail: dict[str, Any]) -> None:
        self.events.append((case_id, kind, detail))

    def run(self, *, housekeeping: bool = True, loans: bool = True) -> SweepSummary:
        if housekeeping:
            self.release_holds()
            self.settle_promises()
            self.settle_plans()
            self.sync_hold_status()
        if loans:
            self.balances()
            # Refresh before opening: the refresh then reads only the cases that were
            # already live, and the new ones are written once, already final.
            self.refresh_and_resolve()
            self.open_cases()
            if is_postgresql():
                self.advance()
            else:
                self.move_stages()
                self.gate_stages()
                self.repeat_stages()
            if self.drop_balances:
                self.execute("DROP TABLE sweep_balance")
        self.write_events()
        if self.entries:
            self.summary.actions.update(run_stage_actions(self.entries, self.map.actions))
        self.summary.batches = 1 if loans else 0
        return self.summary

    def enter(self, case_id: int, loan_id: int, stage_id: int, previous: str | None, repeat_number: int = 0) -> None:
        """A stage entry (or repeat) for the stage-action handlers."""
        self.entries.append(
            StageEntry(
                case_id=case_id,
                loan_id=loan_id,
                stage_id=stage_id,
                stage_code=self.map.stages[stage_id].code,
                previous_stage_code=previous,
                entered_at=self.now,
                repeat_number=repeat_number,
                actor_id=self.actor_id,
                entered_on=self.as_of,
            )
        )

    # 1. balances -------------------------------------------------------------------------
    def balances(self) -> None:
        oldest = "MIN(i.due_date) FILTER (WHERE i.paid_amount < i.amount)"
        per_loan = f"""
            SELECT per_loan.loan_id, COALESCE({sql_days_since("per_loan.oldest")}, 0) AS dpd,
                   per_loan.outstanding, per_loan.overdue
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
        if not is_postgresql():
            self.execute("DROP TABLE IF EXISTS sweep_balance")
            self.execute(f"CREATE TEMP TABLE sweep_balance AS {per_loan}")
            return
        if self.lock_loans:
            # Lock the range's loans for this short transaction: a payment being recorded
            # meanwhile (it locks its loan first too) waits instead of having its fresh
            # balance overwritten with the one computed here a moment earlier. It must be a
            # statement of its own: the next one takes its snapshot once the locks are held,
            # so it sees the installments of a payment that committed while we waited.
            self.execute("SELECT id FROM cases_loan WHERE id BETWEEN %(lo)s AND %(hi)s ORDER BY id FOR UPDATE")
        self.execute(f"CREATE TEMP TABLE sweep_balance ON COMMIT DROP AS {per_loan}")
        # A temporary table has no statistics until ANALYZEd (autovacuum never sees it): the
        # planner would assume a large table and pick hash joins over whole indexes.
        self.execute("ANALYZE sweep_balance")

    # 2. refresh and resolve ------------------------------------------------------------
    def refresh_and_resolve(self) -> None:
        priority = priority_sql(days_past_due="b.dpd", outstanding="b.outstanding")
        rows = self.execute(
            f"""
            UPDATE cases_case SET days_past_due = b.dpd, outstanding = b.outstanding,
                                  overdue_amount = b.overdue, priority = {priority},
                                  status = CASE WHEN b.dpd = 0 THEN 'resolved' ELSE cases_case.status END,
                                  resolved_at = CASE WHEN b.dpd = 0 THEN %(now)s ELSE cases_case.resolved_at END,
                                  updated_at = %(now)s
            FROM sweep_balance b
            WHERE cases_case.loan_id = b.loan_id
              AND cases_case.loan_id BETWEEN %(lo)s AND %(hi)s
              AND cases_case.status IN {LIVE_SQL}
              AND (b.dpd = 0 OR cases_case.days_past_due <> b.dpd OR cases_case.outstanding <> b.outstanding
                   OR cases_case.overdue_amount <> b.overdue OR cases_case.priority <> {priority})
            RETURNING cases_case.id, cases_case.status
            """,
            fetch=True,
        )
        ids = [case_id for case_id, status in rows if status == "resolved"]
        self.summary.refreshed += len(rows) - len(ids)
        if not ids:
            return
        for case_id in ids:
            self.event(case_id, EventKind.RESOLVED, {"reason": "days_past_due_zero"})
        self.settle_resolved(ids)
        self.summary.resolved += len(ids)
        cases_resolved.send(sender=Batch, case_ids=ids, reason="resolved")

    # 3. open -----------------------------------------------------------------------------
    def open_cases(self) -> None:
        if self.map.first_entry_dpd is None:
            return
        outcomes = [o for o in self.map.new_case_outcomes() if o.stage_id is not None or o.gate_id is not None]

        def literal(value: int | None) -> str:
            if value is not None:
                return str(int(value))
            return "CAST(NULL AS bigint)" if is_postgresql() else "NULL"

        def pick(attribute: str) -> str:
            whens = " ".join(
                f"WHEN b.dpd >= {int(o.lo_dpd)}{'' if o.hi_dpd is None else f' AND b.dpd < {int(o.hi_dpd)}'} "
                f"THEN {literal(getattr(o, attribute))}"
                for o in outcomes
            )
            return f"CASE {whens} ELSE {literal(None)} END"

        priority = priority_sql(days_past_due="fresh.dpd", outstanding="fresh.outstanding", new_case=True)
        insert = f"""
            INSERT INTO cases_case (loan_id, status, stage_id, pending_stage_id, days_past_due, outstanding,
                                    overdue_amount, priority, opened_at, updated_at, stage_entered_at,
                                    stage_entered_on, repeat_count, approval_requested_at)
            SELECT fresh.loan_id, CASE WHEN fresh.gate_id IS NULL THEN 'open' ELSE 'awaiting_approval' END,
                   fresh.stage_id, fresh.gate_id, fresh.dpd, fresh.outstanding, fresh.overdue, {priority},
                   %(now)s, %(now)s, CASE WHEN fresh.stage_id IS NOT NULL THEN %(now)s END,
                   CASE WHEN fresh.stage_id IS NOT NULL THEN %(as_of)s END, 0,
                   CASE WHEN fresh.gate_id IS NOT NULL THEN %(now)s END
            FROM (
                SELECT b.loan_id, b.dpd, b.outstanding, b.overdue,
                       {pick("stage_id")} AS stage_id, {pick("gate_id")} AS gate_id
                FROM sweep_balance b
                WHERE b.dpd >= %(first)s
                  AND NOT EXISTS (SELECT 1 FROM cases_case c
                                  WHERE c.loan_id = b.loan_id AND c.loan_id BETWEEN %(lo)s AND %(hi)s
                                    AND c.status IN {LIVE_SQL})
            ) fresh
            WHERE TRUE
            ON CONFLICT (loan_id) WHERE status IN {LIVE_SQL} DO NOTHING
            RETURNING id, loan_id, stage_id, pending_stage_id, days_past_due
        """
        if is_postgresql():
            # The new cases' events are written by the same statement, from the rows it
            # inserted: nothing per case crosses to Python and back (a full first sweep
            # opens a case, and writes two or three events, for almost every loan).
            insert = f"""
                WITH opened AS ({insert}),
                events AS (
                    INSERT INTO cases_caseevent (case_id, at, kind, actor_id, detail)
                    SELECT o.id, %(now)s, e.kind, %(actor)s::bigint, e.detail
                    FROM opened o
                    LEFT JOIN cases_stage entered ON entered.id = o.stage_id
                    LEFT JOIN cases_stage gate ON gate.id = o.pending_stage_id
                    CROSS JOIN LATERAL (VALUES
                        (1, '{EventKind.OPENED.value}', jsonb_build_object('days_past_due', o.days_past_due)),
                        (2, '{EventKind.STAGE_CHANGED.value}',
                         CASE WHEN o.stage_id IS NOT NULL THEN jsonb_build_object(
                             'from', NULL, 'to', entered.code, 'days_past_due', o.days_past_due) END),
                        (3, '{EventKind.AWAITING_APPROVAL.value}',
                         CASE WHEN o.pending_stage_id IS NOT NULL THEN jsonb_build_object(
                             'stage', gate.code, 'days_past_due', o.days_past_due) END)
                    ) AS e (position, kind, detail)
                    WHERE e.detail IS NOT NULL
                    ORDER BY o.id, e.position
                )
                SELECT id, loan_id, stage_id, pending_stage_id, days_past_due FROM opened
            """
        rows = self.execute(insert, {"first": self.map.first_entry_dpd, "actor": self.actor_id}, fetch=True)
        # (SQLite: the events are made here and written with the batch's other events.)
        event = self.event if not is_postgresql() else _no_event
        stages = self.map.stages
        for case_id, loan_id, stage_id, gate_id, dpd in rows:
            # The timeline reads as if the case had been opened, moved and gated one step at a time.
            event(case_id, EventKind.OPENED, {"days_past_due": dpd})
            if stage_id is not None:
                code = stages[stage_id].code
                event(case_id, EventKind.STAGE_CHANGED, {"from": None, "to": code, "days_past_due": dpd})
                self.enter(case_id, loan_id, stage_id, None)
                self.summary.escalated[code] += 1
            if gate_id is not None:
                event(case_id, EventKind.AWAITING_APPROVAL, {"stage": stages[gate_id].code, "days_past_due": dpd})
                self.summary.awaiting_approval += 1
        self.summary.opened += len(rows)

    # 4. stages ---------------------------------------------------------------------------
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
                cast = casts.get(name, "") if is_postgresql() else ""
                cells.append(f"%({key})s{cast}")
            tuples.append(f"({', '.join(cells)})")
        return "VALUES " + ", ".join(tuples), params

    def advance(self) -> None:
        """Moves, gates and repeats of the existing cases in one UPDATE (PostgreSQL).

        It does what ``move_stages``, ``gate_stages`` and ``repeat_stages`` (SQLite's path)
        do one after the other. ``StageMap.transitions`` has already combined each move
        with the gate above its target stage, so a case matches one row at most, found by a
        hash lookup on its stage; what still depends on the case (a pending or snoozed
        approval, the day the stage was entered) is decided here: a case that moves, or
        stops at a gate, does not repeat. All of it is in the UPDATE's own WHERE, so a row
        that another transaction changed meanwhile is re-checked as committed and skipped.
        """
        transitions = self.map.transitions()
        if not transitions:
            return
        table, params = self._table(
            transitions,
            ("from_stage", "lo_dpd", "hi_dpd", "move_to", "gate_to", "repeat_days"),
            ("bigint", "integer", "integer", "bigint", "bigint", "integer"),
            "t",
        )
        gate = """(t.gate_to IS NOT NULL AND cases_case.pending_stage_id IS NULL
                   AND (cases_case.gate_snoozed_until IS NULL OR cases_case.gate_snoozed_until < %(as_of)s))"""
        repeat = f"""(t.move_to IS NULL AND t.repeat_days IS NOT NULL AND NOT {gate}
                      AND cases_case.stage_entered_on
                          <= {sql_as_of_minus("t.repeat_days * (cases_case.repeat_count + 1)")})"""
        rows = self.execute(
            f"""
            WITH t (from_stage, lo_dpd, hi_dpd, move_to, gate_to, repeat_days) AS ({table})
            UPDATE cases_case SET
                stage_id = COALESCE(t.move_to, cases_case.stage_id),
                stage_entered_at = CASE WHEN t.move_to IS NULL THEN cases_case.stage_entered_at ELSE %(now)s END,
                stage_entered_on = CASE WHEN t.move_to IS NULL THEN cases_case.stage_entered_on ELSE %(as_of)s END,
                repeat_count = CASE WHEN t.move_to IS NOT NULL THEN 0
                                    WHEN {repeat} THEN cases_case.repeat_count + 1
                                    ELSE cases_case.repeat_count END,
                status = CASE WHEN {gate} THEN 'awaiting_approval' ELSE cases_case.status END,
                pending_stage_id = CASE WHEN {gate} THEN t.gate_to ELSE cases_case.pending_stage_id END,
                approval_requested_at = CASE WHEN {gate} THEN %(now)s ELSE cases_case.approval_requested_at END,
                approval_requested_by_id = CASE WHEN {gate} THEN NULL ELSE cases_case.approval_requested_by_id END,
                updated_at = %(now)s
            FROM t
            WHERE COALESCE(cases_case.stage_id, 0) = t.from_stage
              AND cases_case.days_past_due >= t.lo_dpd
              AND (t.hi_dpd IS NULL OR cases_case.days_past_due < t.hi_dpd)
              AND {self._movable()}
              AND (t.move_to IS NOT NULL OR {gate} OR {repeat})
            RETURNING cases_case.id, cases_case.loan_id, t.from_stage, t.move_to, cases_case.status,
                      cases_case.pending_stage_id, cases_case.repeat_count, cases_case.days_past_due
            """,
            params,
            fetch=True,
        )
        stages = self.map.stages
        for case_id, loan_id, source, move_to, status, pending, repeat_count, dpd in rows:
            previous = stages[source].code if source in stages else None
            gated = status == "awaiting_approval"
            if move_to is not None:
                target = stages[move_to].code
                self.event(case_id, EventKind.STAGE_CHANGED, {"from": previous, "to": target, "days_past_due": dpd})
                self.enter(case_id, loan_id, move_to, previous)
                self.summary.escalated[target] += 1
            if gated:
                self.event(case_id, EventKind.AWAITING_APPROVAL, {"stage": stages[pending].code, "days_past_due": dpd})
                self.summary.awaiting_approval += 1
            if move_to is None and not gated:
                self.enter(case_id, loan_id, source, previous, repeat_number=repeat_count)
                self.summary.repeats += 1

    @staticmethod
    def _table(
        rows: list[tuple], names: tuple[str, ...], types: tuple[str, ...], prefix: str
    ) -> tuple[str, dict[str, Any]]:
        """A typed VALUES list with named parameters (PostgreSQL), or a typed empty table."""
        if not rows:
            return "SELECT " + ", ".join(f"CAST(NULL AS {kind})" for kind in types) + " WHERE FALSE", {}
        params: dict[str, Any] = {}
        tuples = []
        for n, row in enumerate(rows):
            cells = []
            for name, kind, value in zip(names, types, row, strict=True):
                params[f"{prefix}{n}_{name}"] = value
                cells.append(f"CAST(%({prefix}{n}_{name})s AS {kind})")
            tuples.append(f"({', '.join(cells)})")
        return "VALUES " + ", ".join(tuples), params

    def move_stages(self) -> None:
        # New cases never match (they were written at their final stage): only live cases
        # whose days past due crossed a threshold since the last sweep do.
        if not self.map.moves:
            return
        values, params = self._values(self.map.moves, ("from_stage", "to_stage", "lo_dpd", "hi_dpd"), "m")
        where = f"""
            {sql_same("cases_case.stage_id", "moves.from_stage")}
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
        if is_postgresql():
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
            target = stages[to_id].code
            self.event(case_id, EventKind.STAGE_CHANGED, {"from": previous, "to": target, "days_past_due": dpd})
            self.enter(case_id, loan_id, to_id, previous)
            self.summary.escalated[target] += 1

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
            WHERE {sql_same("cases_case.stage_id", "gates.from_stage")}
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
                  AND stage_entered_on <= {sql_as_of_minus("%(interval)s * (repeat_count + 1)")}
                  AND {self._movable()}
                RETURNING id, loan_id, repeat_count
                """,
                {"stage": stage.pk, "interval": stage.repeat_interval_days},
                fetch=True,
            )
            for case_id, loan_id, number in rows:
                self.enter(case_id, loan_id, stage.pk, stage.code, repeat_number=number)
            self.summary.repeats += len(rows)

    # 5. events ---------------------------------------------------------------------------
    def write_events(self) -> None:
        if not self.events:
            return
        if not is_postgresql():
            CaseEvent.objects.bulk_create(
                [
                    CaseEvent(case_id=case_id, kind=kind, detail=detail, at=self.now, actor_id=self.actor_id)
                    for case_id, kind, detail in self.events
                ],
                batch_size=SQLITE_EVENT_CHUNK,
            )
            self.summary.statements += -(-len(self.events) // SQLITE_EVENT_CHUNK)
            return
        # One statement for the whole batch, in the order the events were made (ids follow
        # it, and a timeline is read by time, then id).
        self.execute(
            """
            INSERT INTO cases_caseevent (case_id, at, kind, actor_id, detail)
            SELECT e.case_id, %(now)s, e.kind, %(actor)s::bigint, e.detail::jsonb
            FROM unnest(%(case_ids)s::bigint[], %(kinds)s::text[], %(details)s::text[]) WITH ORDINALITY
                 AS e (case_id, kind, detail, position)
            ORDER BY e.position
            """,
            {
                "actor": self.actor_id,
                "case_ids": [case_id for case_id, _, _ in self.events],
                "kinds": [str(kind) for _, kind, _ in self.events],
                "details": [json.dumps(detail) for _, _, detail in self.events],
            },
        )
