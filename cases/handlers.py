"""Stage actions that the core carries out itself (others register theirs likewise)."""

from __future__ import annotations

from cases.actions import StageEntry, register_stage_action
from cases.selectors import business_date
from cases.services.assignment import call_tasks_schedule, cases_assign_unassigned


@register_stage_action("assign_collector")
def assign_collector(entries: list[StageEntry], action: str) -> None:
    cases_assign_unassigned(case_ids=[e.case_id for e in entries], now=entries[0].entered_at)


@register_stage_action("call_task")
def call_task(entries: list[StageEntry], action: str) -> None:
    first = entries[0]
    call_tasks_schedule(case_ids=[e.case_id for e in entries], on=first.entered_on or business_date(first.entered_at))
