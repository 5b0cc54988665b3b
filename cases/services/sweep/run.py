"""The sweep's entry points: one batch (``sweep_batch``) and a whole run (``sweep_run``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cases.models import SweepRun
from cases.services.assignment import collectors_rebalance_inactive

from .batch import Batch
from .stage_map import StageMap
from .summary import SweepSummary

# Any constant shared by every sweep process; pg_advisory_lock takes a 64-bit key.
SWEEP_LOCK_KEY = 0x5EE9_C011


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
    batch = Batch(
        stage_map=stage_map or StageMap.build(),
        as_of=as_of,
        now=now or timezone.now(),
        lo=lo,
        hi=hi,
        actor_id=getattr(actor, "pk", None),
        lock_loans=lock_loans and not dry_run,
        nested=connection.in_atomic_block,
    )
    try:
        with transaction.atomic():
            batch.run(housekeeping=housekeeping, loans=loans)
            if dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    finally:
        batch.cursor.close()
    return batch.summary


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

    Correctness does not depend on it (see the package docstring); it keeps a second,
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
