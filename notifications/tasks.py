"""Notification tasks. Thin, ids only (no personal data in the broker), safe to run twice."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.utils import timezone

from .dispatch import dispatch_message
from .models import MessageStatus, OutboundMessage
from .reconcile import reconcile_stuck

logger = logging.getLogger(__name__)
CHUNK = 20
RELEASE_LIMIT = 5000


@shared_task(name="notifications.tasks.dispatch_messages")
def dispatch_messages(message_ids: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    retries: list[tuple[int, float]] = []
    for message_id in message_ids:
        try:
            outcome = dispatch_message(message_id)
        except Exception:
            # One bad message must not stop the others; the row stays pending or sending
            # and the release or reconcile task deals with it.
            logger.exception("dispatch failed for message %s", message_id)
            continue
        if outcome is None:
            continue
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.retry_in is not None:
            retries.append((message_id, outcome.retry_in))
    for message_id, delay in retries:
        dispatch_messages.apply_async(args=[[message_id]], countdown=delay)
    return counts


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
