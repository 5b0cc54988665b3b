"""Notification tasks. Thin, ids only (no personal data in the broker), safe to run twice."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from celery.signals import task_prerun
from django.db import connections
from django.utils import timezone

from .dispatch import dispatch_messages_now
from .models import MessageStatus, OutboundMessage
from .reconcile import reconcile_stuck

logger = logging.getLogger(__name__)
# Ids per dispatch task. Each task pays one claim transaction and one "sent" record, and
# Celery's own per-task cost: at 20 the benchmark's ratio was 0.37-0.72, at 50 0.65-0.83
# (docs/performance.md). The price: a worker killed mid-chunk leaves up to this many
# claimed rows, and those it had not sent yet go to needs_review.
CHUNK = 50
RELEASE_LIMIT = 5000


@shared_task(name="notifications.tasks.dispatch_messages")
def dispatch_messages(message_ids: list[int]) -> dict[str, int]:
    """Send a chunk of messages. If the chunk cannot even be claimed (the database is
    unreachable), the task fails and its rows stay pending for the release task."""
    counts: dict[str, int] = {}
    retries: list[tuple[int, float]] = []
    for message_id, outcome in dispatch_messages_now(message_ids).items():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.retry_in is not None:
            retries.append((message_id, outcome.retry_in))
    for message_id, delay in retries:
        dispatch_messages.apply_async(args=[[message_id]], countdown=delay)
    return counts


@task_prerun.connect
def _drop_broken_connections(**kwargs) -> None:
    """Workers keep their database connection from task to task (CELERY_DB_REUSE_MAX): a
    new connection per chunk of messages would cost more than the chunk's queries. A
    connection that failed in an earlier task (the database restarted) is dropped here,
    so the next query reconnects instead of failing every task until the reuse limit."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is None or not connection.errors_occurred:
            continue
        if connection.is_usable():
            connection.errors_occurred = False  # an ordinary error (a conflict): keep it
        else:
            connection.close()


@shared_task(name="notifications.tasks.release_due_messages")
def release_due_messages() -> int:
    """Queue dispatch for messages whose time has come: deferred ones at their new time,
    and queued ones whose task was lost (the broker was down). Claiming is conditional,
    so a message queued twice is still sent once."""
    now = timezone.now()
    stale = now - dt.timedelta(minutes=2)
    ids = list(
        OutboundMessage.objects.filter(
            status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED], scheduled_for__lte=now
        )
        .exclude(status=MessageStatus.QUEUED, scheduled_for__gt=stale)
        .order_by("scheduled_for")
        .values_list("pk", flat=True)[:RELEASE_LIMIT]
    )
    for start in range(0, len(ids), CHUNK):
        dispatch_messages.delay(ids[start : start + CHUNK])
    return len(ids)


@shared_task(name="notifications.tasks.reconcile_sending")
def reconcile_sending() -> dict[str, int]:
    return reconcile_stuck()
