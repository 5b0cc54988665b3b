"""Holds, promises and payment plans: the part of a batch that is not driven by balances.

A full sweep runs these once over every case (few rows change, and partial indexes find
them) before the loan batches, so that a broken promise or an ended hold lets the case
move in the same sweep; a single-loan evaluation runs them for that loan's case only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cases.models import EventKind
from cases.policy import case_policy

from .sql import LIVE_SQL, is_postgresql, sql_as_of_minus, sql_deadline

if TYPE_CHECKING:
    from .summary import SweepSummary


class HousekeepingMixin:
    """Methods of ``Batch``; ``self.scope`` limits them to the batch's cases (or all)."""

    _grace_days: int | None = None
    # Provided by Batch (batch.py); declared here for the type checker.
    scope: str
    summary: SweepSummary

    if TYPE_CHECKING:

        def execute(self, sql: str, params: dict[str, Any] | None = None, *, fetch: bool = False) -> list[tuple]: ...

        def event(self, case_id: int, kind: str, detail: dict[str, Any]) -> None: ...

    def grace_days(self) -> int:
        """The policy's promise grace days, read once per batch (the policy is owned by
        notifications and reaches ``cases`` through ``case_policy``)."""
        if self._grace_days is None:
            self._grace_days = case_policy().promise_grace_days
        return self._grace_days

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
        grace = self.grace_days()
        paid_since = f"""(SELECT COALESCE(SUM(pay.amount), 0) FROM cases_payment pay
                          JOIN cases_case c ON c.loan_id = pay.loan_id
                          WHERE c.id = cases_promisetopay.case_id AND pay.paid_at >= cases_promisetopay.created_at
                            AND pay.paid_at < {sql_deadline("cases_promisetopay.due_date", "%(grace)s")})"""
        rows = self.execute(
            f"""
            UPDATE cases_promisetopay SET
                status = CASE WHEN {paid_since} >= cases_promisetopay.amount THEN 'kept' ELSE 'broken' END,
                settled_at = %(now)s
            WHERE status = 'pending'
              AND case_id IN (SELECT cases_case.id FROM cases_case WHERE {self.scope}
                              AND cases_case.status IN {LIVE_SQL})
              AND (due_date < {sql_as_of_minus("%(grace)s")} OR {paid_since} >= cases_promisetopay.amount)
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
            self.in_update("UPDATE cases_case SET paused_until = NULL WHERE id", broken)

    def settle_plans(self) -> None:
        # A plan is broken when the payments made since it started fall short of the plan
        # installments already due (plus grace), kept when they reach its total.
        grace = self.grace_days()
        paid_since = """(SELECT COALESCE(SUM(pay.amount), 0) FROM cases_payment pay
                          JOIN cases_case c ON c.loan_id = pay.loan_id
                          WHERE c.id = cases_paymentplan.case_id AND pay.paid_at >= cases_paymentplan.created_at)"""
        due_so_far = f"""(SELECT COALESCE(SUM(pi.amount), 0) FROM cases_planinstallment pi
                           WHERE pi.plan_id = cases_paymentplan.id AND pi.due_date < {sql_as_of_minus("%(grace)s")})"""
        rows = self.execute(
            f"""
            UPDATE cases_paymentplan SET
                status = CASE WHEN {paid_since} >= cases_paymentplan.total_amount THEN 'kept' ELSE 'broken' END,
                settled_at = %(now)s
            WHERE status = 'active'
              AND case_id IN (SELECT cases_case.id FROM cases_case WHERE {self.scope}
                              AND cases_case.status IN {LIVE_SQL})
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

    def settle_resolved(self, ids: list[int]) -> None:
        """A cured case keeps its word: pending promises and live plans count as kept, on the
        timeline like every other change."""
        for case_id, promise_id in self.in_update(
            "UPDATE cases_promisetopay SET status = 'kept', settled_at = %(now)s WHERE status = 'pending' AND case_id",
            ids,
            returning="case_id, id",
        ):
            self.event(case_id, EventKind.PROMISE_KEPT, {"promise": promise_id, "why": "resolved"})
            self.summary.promises_kept += 1
        for case_id, plan_id in self.in_update(
            "UPDATE cases_paymentplan SET status = 'kept', settled_at = %(now)s "
            "WHERE status IN ('proposed', 'active') AND case_id",
            ids,
            returning="case_id, id",
        ):
            self.event(case_id, EventKind.PLAN_KEPT, {"plan": plan_id, "why": "resolved"})
            self.summary.plans_kept += 1

    def in_update(self, sql_before_in: str, ids: list[int], returning: str = "") -> list[tuple]:
        """``... IN (ids)``: one array parameter on PostgreSQL; SQLite has no tuple parameters,
        so the list is spelt out as named parameters there."""
        tail = f" RETURNING {returning}" if returning else ""
        if is_postgresql():
            return self.execute(f"{sql_before_in} IN %(ids)s{tail}", {"ids": tuple(ids)}, fetch=bool(returning))
        names = {f"id{n}": value for n, value in enumerate(ids)}
        placeholders = ", ".join(f"%({name})s" for name in names)
        return self.execute(f"{sql_before_in} IN ({placeholders}){tail}", names, fetch=bool(returning))
