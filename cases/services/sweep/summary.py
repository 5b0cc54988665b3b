"""What one sweep (or one batch of it) did."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# The bookkeeping counters: summed over batches like the others, but they say how the work
# was done, not that something changed.
_BOOKKEEPING = frozenset({"batches", "statements"})


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
    # Live cases whose days past due, amounts or priority changed (new cases are written
    # with their final figures and counted in ``opened`` only).
    refreshed: int = 0
    reassigned: int = 0
    batches: int = 0
    statements: int = 0
    skipped: str = ""

    @classmethod
    def _counters(cls) -> list[str]:
        """The integer counters, read off the fields so a new one cannot be forgotten in
        ``add`` or ``changed``."""
        return [f.name for f in fields(cls) if f.type in ("int", int)]

    @property
    def changed(self) -> bool:
        if sum(self.escalated.values()):
            return True
        return any(getattr(self, name) for name in self._counters() if name not in _BOOKKEEPING)

    def add(self, other: SweepSummary) -> None:
        for name in self._counters():
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.escalated.update(other.escalated)
        self.actions.update(other.actions)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["escalated"] = dict(self.escalated)
        data["actions"] = dict(self.actions)
        return data
