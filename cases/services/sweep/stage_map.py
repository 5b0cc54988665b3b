"""Where a case may go from each stage, precomputed once per sweep from the stage rules."""

from __future__ import annotations

from dataclasses import dataclass

from cases.models import Stage


@dataclass(frozen=True)
class NewCaseOutcome:
    """Where a case opened at a DPD in [lo_dpd, hi_dpd) lands in the very statement that opens
    it: the stage it enters (None when the first active stage is a gate) and the gate it
    waits at (None when it is below every gate)."""

    lo_dpd: int
    hi_dpd: int | None
    stage_id: int | None
    gate_id: int | None


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

    def new_case_outcomes(self) -> list[NewCaseOutcome]:
        """A new case's final place: the move from no stage, then the gate above the stage it
        entered, exactly as the separate move and gate statements would have left it (so a
        case first seen at DPD 95 enters third_party and waits for litigation's approval)."""
        outcomes: list[NewCaseOutcome] = []
        targets: list[tuple[int, int | None, int | None]] = [
            (lo, hi, to_stage) for from_stage, to_stage, lo, hi in self.moves if from_stage is None
        ]
        if not targets and self.first_entry_dpd is not None:
            targets = [(self.first_entry_dpd, None, None)]  # the first active stage is itself a gate
        for lo, hi, stage_id in targets:
            gate = next(((to, dpd) for source, to, dpd in self.gates if source == stage_id), None)
            if gate is None or (hi is not None and gate[1] >= hi):
                outcomes.append(NewCaseOutcome(lo, hi, stage_id, None))
                continue
            gate_id, gate_dpd = gate
            if gate_dpd > lo:
                outcomes.append(NewCaseOutcome(lo, gate_dpd, stage_id, None))
            outcomes.append(NewCaseOutcome(max(lo, gate_dpd), hi, stage_id, gate_id))
        return outcomes
