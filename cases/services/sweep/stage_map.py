"""Where a case may go from each stage, precomputed once per sweep from the stage rules."""

from __future__ import annotations

from dataclasses import dataclass

from cases.models import Stage


@dataclass(frozen=True)
class Outcome:
    """Where a case at a DPD in [lo_dpd, hi_dpd) ends in one statement: the stage it moves
    to (None: it stays) and the gate it then waits at (None: below every gate)."""

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

    def outcomes(self, source: int | None) -> list[Outcome]:
        """Where a case in stage ``source`` (None: a new case) ends, by its DPD: the move from
        ``source``, then the gate above the stage it moved to (or above ``source``), exactly
        as separate move and gate statements would leave it one after the other (so a case
        first seen at DPD 95 enters third_party and waits for litigation's approval).
        Contiguous ranges from DPD 0 up; a range with neither a move nor a gate is kept."""
        targets = [(lo, hi, to_stage) for from_stage, to_stage, lo, hi in self.moves if from_stage == source]
        targets.sort(key=lambda target: target[0])
        segments: list[tuple[int, int | None, int | None]] = [(0, targets[0][0] if targets else None, None)]
        segments += targets
        outcomes: list[Outcome] = []
        for lo, hi, stage_id in segments:
            if hi is not None and hi <= lo:
                continue
            base = stage_id if stage_id is not None else source
            gate = next(((to, dpd) for origin, to, dpd in self.gates if origin == base), None)
            if gate is None or (hi is not None and gate[1] >= hi):
                outcomes.append(Outcome(lo, hi, stage_id, None))
                continue
            gate_id, gate_dpd = gate
            if gate_dpd > lo:
                outcomes.append(Outcome(lo, gate_dpd, stage_id, None))
            outcomes.append(Outcome(max(lo, gate_dpd), hi, stage_id, gate_id))
        return outcomes

    def new_case_outcomes(self) -> list[Outcome]:
        return self.outcomes(None)

    def transitions(self) -> list[tuple[int, int, int | None, int | None, int | None, int | None]]:
        """(from stage id or 0 for none, lowest DPD, DPD bound, stage to move to, gate to wait
        at, repeat interval in days) for every live case: one row matches a case at most.
        The gate and the repeat still depend on the case (a pending or snoozed approval, the
        day the stage was entered); a row that can do nothing is left out."""
        rows = []
        for source in [None, *self.stages]:
            stage = self.stages.get(source)
            interval = stage.repeat_interval_days if stage is not None and stage.active else None
            for outcome in self.outcomes(source):
                repeat = interval if outcome.stage_id is None and interval else None
                if outcome.stage_id is None and outcome.gate_id is None and repeat is None:
                    continue
                rows.append((source or 0, outcome.lo_dpd, outcome.hi_dpd, outcome.stage_id, outcome.gate_id, repeat))
        return rows
