"""Settle messages stuck in ``sending`` (a worker died mid-send): ask the provider when we
know the message's id there, otherwise flag it for a person. Never resend blindly."""

from __future__ import annotations

import datetime as dt
import logging

from django.utils import timezone

from cases.models import CaseEvent, EventKind

from .channels.base import SendError
from .channels.sms import get_sms_backend
from .dispatch import apply_provider_status
from .models import Channel, MessageStatus, OutboundMessage, Reason

logger = logging.getLogger(__name__)
STUCK_AFTER = dt.timedelta(minutes=10)
# Sent SMS whose delivery receipt never came are asked about after this long.
RECEIPT_OVERDUE = dt.timedelta(hours=1)
BATCH = 1000


def reconcile_stuck(*, now: dt.datetime | None = None, stuck_after: dt.timedelta = STUCK_AFTER) -> dict[str, int]:
    now = now or timezone.now()
    counts = {"checked": 0, "settled": 0, "needs_review": 0}
    stuck = OutboundMessage.objects.filter(status=MessageStatus.SENDING, claimed_at__lt=now - stuck_after)
    for message in stuck.iterator(chunk_size=500):
        counts["checked"] += 1
        if message.provider_id and message.channel == Channel.SMS:
            try:
                status = get_sms_backend().fetch_status(message.provider_id)
            except SendError:
                continue  # the provider is unreachable: try again next time
            if status and apply_provider_status(message, status):
                counts["settled"] += 1
                continue
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
