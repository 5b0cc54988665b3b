"""The stage-action registry: how other apps act when cases enter a stage.

A stage rule names its entry actions in data (``Stage.entry_actions``, e.g. ``["sms",
"email"]``). Apps that build on ``cases`` (notifications, legal) register a handler per
action name at start-up, in their ``AppConfig.ready``. ``cases`` never imports them:
the arrows point inwards.

Handlers receive a whole batch of entries at once, inside the transaction that moved
the cases, so a batch of 2,000 transitions costs a handful of queries, not 2,000; and
if the transaction rolls back, so does everything the handlers wrote.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageEntry:
    """One case entering (or, for repeats, re-triggering) one stage."""

    case_id: int
    loan_id: int
    stage_id: int
    stage_code: str
    previous_stage_code: str | None
    entered_at: dt.datetime
    # 0 for the entry itself, 1, 2... for the repeats of a stage with a repeat interval.
    repeat_number: int = 0
    actor_id: int | None = None
    # The business date of the entry (the sweep's as_of), which can differ from today.
    entered_on: dt.date | None = None


StageActionHandler = Callable[[list[StageEntry], str], None]
_handlers: dict[str, list[StageActionHandler]] = defaultdict(list)


def register_stage_action(
    action: str,
) -> Callable[[StageActionHandler], StageActionHandler]:
    """Decorator: ``@register_stage_action("sms")`` on ``def handler(entries, action)``."""

    def decorator(handler: StageActionHandler) -> StageActionHandler:
        if handler not in _handlers[action]:
            _handlers[action].append(handler)
        return handler

    return decorator


def unregister_stage_action(action: str, handler: StageActionHandler) -> None:
    if handler in _handlers.get(action, []):
        _handlers[action].remove(handler)


def registered_actions() -> dict[str, list[StageActionHandler]]:
    return {action: list(handlers) for action, handlers in _handlers.items() if handlers}


def run_stage_actions(entries: Iterable[StageEntry], actions_by_stage: dict[int, list[str]]) -> dict[str, int]:
    """Hand each action's entries to its handlers; return how many entries each action got."""
    by_action: dict[str, list[StageEntry]] = defaultdict(list)
    for entry in entries:
        for action in actions_by_stage.get(entry.stage_id, []):
            by_action[action].append(entry)
    counts: dict[str, int] = {}
    for action, batch in by_action.items():
        handlers = _handlers.get(action, [])
        if not handlers:
            # The rule names an action no installed app carries out yet; say so once per batch.
            logger.info(
                "No handler registered for stage action %r (%d cases)",
                action,
                len(batch),
            )
            continue
        for handler in handlers:
            handler(batch, action)
        counts[action] = len(batch)
    return counts


# Stage guards: conditions other apps put on entering a stage (legal's limitation check on
# ``litigation``). A guard takes the case and the business date and raises Django's
# ValidationError with the reason; the approval service consults them before a case enters.
StageGuard = Callable[..., None]
_guards: dict[str, list[StageGuard]] = defaultdict(list)


def register_stage_guard(stage_code: str, guard: StageGuard) -> StageGuard:
    if guard not in _guards[stage_code]:
        _guards[stage_code].append(guard)
    return guard


def unregister_stage_guard(stage_code: str, guard: StageGuard) -> None:
    if guard in _guards.get(stage_code, []):
        _guards[stage_code].remove(guard)


def check_stage_guards(stage_code: str, case, *, as_of: dt.date) -> None:
    """Run the guards registered for ``stage_code``; the first refusal propagates."""
    for guard in _guards.get(stage_code, []):
        guard(case, as_of=as_of)


# --- Event kinds other apps write ----------------------------------------------------------
# CaseEvent.kind is free text: cases' own kinds are EventKind; an app that writes kinds of
# its own (legal: "placed", "recalled"...) registers their translatable labels here so that
# every timeline shows "Placed with an agency" rather than the stored word.
_event_labels: dict[str, object] = {}


def register_event_labels(labels: dict[str, object]) -> None:
    _event_labels.update(labels)


def event_label(kind: str) -> str:
    """The reader's-language label of an event kind: cases' own, a registered one, or the word."""
    from cases.models import EventKind

    try:
        return str(EventKind(kind).label)
    except ValueError:
        return str(_event_labels.get(kind, kind))
