from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from cases.models import Case, CaseEvent


def event_record(
    *,
    case: Case,
    kind: str,
    actor=None,
    detail: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> CaseEvent:
    """Append one event to a case's timeline. Call it inside the transaction that made the change."""
    return CaseEvent.objects.create(
        case=case,
        kind=kind,
        actor=actor if actor is not None and actor.is_authenticated else None,
        detail=detail or {},
        at=at or timezone.now(),
    )
