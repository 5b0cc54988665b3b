"""Who works which case: least-loaded assignment, reassignment and rebalancing.

Load is the number of live cases a collector holds. New work goes to the active
collector with the fewest; ties go to whoever received a case longest ago. Everything
works on batches: one query reads the loads, one writes the assignments, one the events.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from cases.exceptions import ConflictError, PermissionDenied
from cases.models import Case, CaseEvent, EventKind
from cases.models.cases import LIVE_STATUSES

ASSIGN_PERMISSION = "cases.assign_case"
_LONG_AGO = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def active_collectors():
    return User.objects.filter(is_active=True, groups__name="collector")


def collector_loads() -> list[tuple[int, dt.datetime, int]]:
    """(live cases held, last assigned at, user id) for every active collector."""
    rows = (
        active_collectors()
        .annotate(load=Count("assigned_cases", filter=Q(assigned_cases__status__in=LIVE_STATUSES)))
        .values_list("load", "last_assigned_at", "id")
    )
    return [(load, last or _LONG_AGO, user_id) for load, last, user_id in rows]


def _distribute(case_ids: list[int], *, now: dt.datetime, actor=None, reason: str) -> dict[int, int]:
    """Assign the cases one by one to the least-loaded collector; return case id -> user id."""
    heap = collector_loads()
    if not heap or not case_ids:
        return {}
    heapq.heapify(heap)
    plan: dict[int, int] = {}
    for case_id in case_ids:
        load, _last, user_id = heapq.heappop(heap)
        plan[case_id] = user_id
        # The collector just received work: among equals they now wait the least.
        heapq.heappush(heap, (load + 1, now, user_id))
    _apply(plan, now=now, actor=actor, reason=reason)
    return plan


def _apply(plan: dict[int, int], *, now: dt.datetime, actor=None, reason: str) -> None:
    cases = [Case(pk=case_id, assigned_to_id=user_id, updated_at=now) for case_id, user_id in plan.items()]
    Case.objects.bulk_update(cases, ["assigned_to", "updated_at"], batch_size=2000)
    CaseEvent.objects.bulk_create(
        [
            CaseEvent(
                case_id=case_id,
                kind=EventKind.ASSIGNED,
                at=now,
                actor_id=getattr(actor, "pk", None),
                detail={"to": user_id, "reason": reason},
            )
            for case_id, user_id in plan.items()
        ],
        batch_size=2000,
    )
    User.objects.filter(pk__in=set(plan.values())).update(last_assigned_at=now)


def cases_assign_unassigned(*, case_ids: Iterable[int], now: dt.datetime | None = None, actor=None) -> dict[int, int]:
    """Give each live case that has no active collector to the least-loaded one."""
    now = now or timezone.now()
    needing = list(
        Case.objects.filter(pk__in=list(case_ids), status__in=LIVE_STATUSES)
        .filter(Q(assigned_to__isnull=True) | Q(assigned_to__is_active=False))
        .order_by("-priority", "pk")
        .values_list("pk", flat=True)
    )
    return _distribute(needing, now=now, actor=actor, reason="stage_entry")


@transaction.atomic
def cases_reassign(*, case_ids: Iterable[int], to_user: User, by: User) -> int:
    """A supervisor moves cases to a collector, singly or in bulk. Returns how many moved."""
    if not by.has_perm(ASSIGN_PERMISSION):
        raise PermissionDenied("Only supervisors may assign or reassign cases.")
    if not to_user.is_active or not to_user.groups.filter(name="collector").exists():
        raise ConflictError(f"{to_user.get_username()} is not an active collector.")
    now = timezone.now()
    ids = list(
        Case.objects.filter(pk__in=list(case_ids), status__in=LIVE_STATUSES)
        .exclude(assigned_to=to_user)
        .values_list("pk", flat=True)
    )
    _apply(dict.fromkeys(ids, to_user.pk), now=now, actor=by, reason="reassigned")
    return len(ids)


@transaction.atomic
def collectors_rebalance_inactive(*, now: dt.datetime | None = None) -> int:
    """Share out the live cases of collectors who are no longer active (housekeeping).

    Safe to run any time and any number of times: it only touches cases whose collector
    is inactive, and those are gone from the set once reassigned.
    """
    now = now or timezone.now()
    orphaned = list(
        Case.objects.select_for_update(skip_locked=True)
        .filter(status__in=LIVE_STATUSES, assigned_to__is_active=False)
        .order_by("-priority", "pk")
        .values_list("pk", flat=True)
    )
    return len(_distribute(orphaned, now=now, reason="collector_inactive"))


@transaction.atomic
def collector_deactivate(*, user: User, by: User) -> int:
    """Deactivate a collector and share their cases out again. Returns how many moved."""
    if not by.has_perm(ASSIGN_PERMISSION) and not by.is_superuser:
        raise PermissionDenied("Only supervisors may deactivate collectors.")
    User.objects.filter(pk=user.pk).update(is_active=False)
    return collectors_rebalance_inactive()


def call_tasks_schedule(*, case_ids: Iterable[int], on: dt.date) -> int:
    """The phone stage's call task: the case's next action is due on the entry day."""
    return (
        Case.objects.filter(pk__in=list(case_ids))
        .filter(Q(next_action_on__isnull=True) | Q(next_action_on__gt=on))
        .update(next_action_on=on)
    )
