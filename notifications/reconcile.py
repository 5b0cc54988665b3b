"""Settle messages stuck in ``sending`` (a worker died between claiming and recording):
find out from the provider what happened, otherwise flag the message for a person. Never
resend blindly.

- The provider id is known: fetch the message's status from the provider.
- It is not (the worker died after sending but before recording "sent", or before sending
  at all): list what the provider accepted for that number since the claim. Exactly one
  message the outbox does not know yet is ours: its id and status are recorded. None, or
  more than one, and a person decides (``needs_review``): a duplicate collection SMS is a
  breach, so "the provider shows nothing" is not taken as "safe to send again".
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from cases.models import CaseEvent, EventKind

from .channels.base import SendError
from .channels.sms import SmsBackend, get_sms_backend
from .dispatch import apply_provider_status
from .models import Channel, MessageStatus, OutboundMessage, Reason

logger = logging.getLogger(__name__)
STUCK_AFTER = dt.timedelta(minutes=10)
# Sent SMS whose delivery receipt never came are asked about after this long.
RECEIPT_OVERDUE = dt.timedelta(hours=1)
BATCH = 1000


def reconcile_stuck(*, now: dt.datetime | None = None, stuck_after: dt.timedelta = STUCK_AFTER) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"checked": 0, "settled": 0, "recovered": 0, "needs_review": 0}
    stuck = OutboundMessage.objects.filter(status=MessageStatus.SENDING, claimed_at__lt=now - stuck_after)
    backend: SmsBackend | None = None
    for message in stuck.order_by("pk").iterator(chunk_size=500):
        counts["checked"] += 1
        if message.channel == Channel.SMS:
            backend = backend or get_sms_backend()
            try:
                if message.provider_id:
                    status = backend.fetch_status(message.provider_id)
                    if status and apply_provider_status(message, status):
                        counts["settled"] += 1
                        continue
                elif _recover_provider_id(message, backend):
                    counts["recovered"] += 1
                    continue
            except SendError:
                continue  # the provider is unreachable: try again next time
        moved = OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
            status=MessageStatus.NEEDS_REVIEW, reason=Reason.UNKNOWN_OUTCOME, updated_at=now
        )
        if moved:
            counts["needs_review"] += 1
            CaseEvent.objects.create(
                case_id=message.case_id,
                kind=EventKind.MESSAGE,
                detail={"message": message.pk, "outcome": "needs_review", "reason": Reason.UNKNOWN_OUTCOME},
            )
    overdue = OutboundMessage.objects.filter(
        status=MessageStatus.SENT, channel=Channel.SMS, sent_at__lt=now - RECEIPT_OVERDUE, delivered_at__isnull=True
    ).exclude(provider_id="")
    for message in overdue.order_by("sent_at")[:BATCH]:
        counts["checked"] += 1
        try:
            status = get_sms_backend().fetch_status(message.provider_id)
        except SendError:
            break
        if status and apply_provider_status(message, status):
            counts["settled"] += 1
    return counts


def _recover_provider_id(message: OutboundMessage, backend: SmsBackend) -> bool:
    """Record the provider's id and status for a message sent but not recorded; False when
    the provider's records do not name exactly one candidate."""
    listed = backend.find_sent(to=message.to, since=message.claimed_at)
    if not listed:
        return False
    known = set(
        OutboundMessage.objects.filter(provider_id__in=[m.provider_id for m in listed]).values_list(
            "provider_id", flat=True
        )
    )
    candidates = [m for m in listed if m.provider_id not in known]
    if len(candidates) != 1:
        return False
    found = candidates[0]
    sent_at = found.created_at or timezone.now()
    with transaction.atomic():
        moved = OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING, provider_id="").update(
            status=MessageStatus.SENT, provider_id=found.provider_id, sent_at=sent_at, updated_at=timezone.now()
        )
        if not moved:
            return False
        CaseEvent.objects.create(
            case_id=message.case_id,
            kind=EventKind.MESSAGE,
            detail={"message": message.pk, "channel": message.channel, "outcome": "sent", "recovered": True},
        )
    message.status, message.provider_id, message.sent_at = MessageStatus.SENT, found.provider_id, sent_at
    logger.info("message %s: provider id %s recovered from the provider's records", message.pk, found.provider_id)
    apply_provider_status(message, found.status)
    return True
