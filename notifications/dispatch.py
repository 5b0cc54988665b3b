"""Sending one outbox message: claim, check the policy, send, record. Loses nothing and
sends nothing twice.

1. In one short transaction: lock the row if it is still pending and due (a second
   delivery of the same task finds nothing to do), lock the borrower (so two workers
   cannot both pass the SMS caps), apply the policy, and either settle the row
   (suppressed or deferred, with the rule as the reason) or claim it: queued -> sending.
2. Outside any transaction: call the provider.
3. Record the outcome with a conditional UPDATE on ``status = 'sending'``.

A worker that dies between 1 and 3 leaves the row in ``sending``; the redelivered task
skips it (it is no longer pending) and the reconcile task settles it from the provider's
records, or marks it ``needs_review`` when the provider id is unknown: a blind resend
could text a borrower twice, which is itself a breach.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from cases.models import Borrower, CaseEvent, EventKind

from .channels.base import PermanentSendError, RecipientOptedOut, SendResult, TransientSendError
from .channels.email import send_email
from .channels.sms import get_sms_backend
from .models import STATUS_RANK, Channel, MessageStatus, OutboundMessage, Reason
from .optouts import sms_opt_out_record
from .policy import DEFER, SUPPRESS, decide

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BASE_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600


@dataclass(frozen=True)
class Outcome:
    status: str
    retry_in: float | None = None


def backoff_seconds(attempt: int, *, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter (30 s, 60 s, 120 s... capped at an hour), never
    sooner than the provider's Retry-After."""
    ceiling = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** max(0, attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0)


def dispatch_message(message_id: int, *, now: dt.datetime | None = None) -> Outcome | None:
    """Send one message if it is pending and due. Returns None when there was nothing to do."""
    now = now or timezone.now()
    message = _claim(message_id, now)
    if message is None or message.status != MessageStatus.SENDING:
        return Outcome(message.status) if message is not None else None
    try:
        result = _send(message)
    except RecipientOptedOut as exc:
        sms_opt_out_record(phone=message.to, source="twilio_21610", keyword="")
        return _settle(message, MessageStatus.SUPPRESSED, reason=Reason.OPT_OUT, error=exc)
    except PermanentSendError as exc:
        return _settle(message, MessageStatus.FAILED, reason=Reason.PROVIDER_ERROR, error=exc)
    except TransientSendError as exc:
        if getattr(exc, "outcome_unknown", False):
            # The request reached the provider and the answer was lost: the SMS may have
            # gone. Retrying could text the borrower twice, so a person decides.
            return _settle(message, MessageStatus.NEEDS_REVIEW, reason=Reason.UNKNOWN_OUTCOME, error=exc)
        if message.attempts >= MAX_ATTEMPTS:
            return _settle(message, MessageStatus.FAILED, reason=Reason.RETRIES_EXHAUSTED, error=exc)
        delay = backoff_seconds(message.attempts, retry_after=exc.retry_after)
        OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
            status=MessageStatus.QUEUED,
            scheduled_for=timezone.now() + dt.timedelta(seconds=delay),
            error_code=exc.code,
            error_message=exc.message[:1000],
            updated_at=timezone.now(),
        )
        return Outcome(MessageStatus.QUEUED, retry_in=delay)
    return _record_sent(message, result)


def _claim(message_id: int, now: dt.datetime) -> OutboundMessage | None:
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("case", "borrower", "template")
            .filter(pk=message_id, status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED], scheduled_for__lte=now)
            .first()
        )
        if message is None:
            return None
        # Serialise per borrower: the caps count what is being sent right now as well.
        message.borrower = Borrower.objects.select_for_update().get(pk=message.borrower_id)
        decision = decide(message, now=now)
        if decision.action == SUPPRESS:
            _update(message, status=MessageStatus.SUPPRESSED, reason=decision.reason)
            _event(message, "suppressed", reason=decision.reason)
        elif decision.action == DEFER:
            _update(message, status=MessageStatus.DEFERRED, reason=decision.reason, scheduled_for=decision.not_before)
        else:
            _update(
                message,
                status=MessageStatus.SENDING,
                reason="",
                claimed_at=now,
                attempts=message.attempts + 1,
            )
        return message


def _update(message: OutboundMessage, **fields) -> None:
    for name, value in fields.items():
        setattr(message, name, value)
    message.save(update_fields=[*fields, "updated_at"])


def _send(message: OutboundMessage) -> SendResult:
    if message.channel == Channel.SMS:
        return get_sms_backend().send(to=message.to, body=message.body, message_id=message.pk)
    return send_email(
        to=message.to,
        subject=message.subject,
        text=message.body,
        html=message.html_body,
        message_id=message.pk,
        language=message.language,
    )


def _record_sent(message: OutboundMessage, result: SendResult) -> Outcome:
    sent_at = timezone.now()
    updated = OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
        status=MessageStatus.SENT,
        provider_id=result.provider_id,
        sent_at=sent_at,
        error_code="",
        error_message="",
        updated_at=sent_at,
    )
    if updated:
        message.status, message.provider_id, message.sent_at = MessageStatus.SENT, result.provider_id, sent_at
        _event(message, "sent")
        # A delivery receipt may have arrived before we knew the provider id.
        from .receipts import receipts_apply_pending

        receipts_apply_pending(provider_id=result.provider_id)
    return Outcome(MessageStatus.SENT)


def _settle(message: OutboundMessage, status: str, *, reason: str, error: Exception) -> Outcome:
    code = getattr(error, "code", "") or ""
    text = getattr(error, "message", str(error))
    OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
        status=status, reason=reason, error_code=str(code)[:16], error_message=text[:1000], updated_at=timezone.now()
    )
    message.status = status
    _event(message, status, reason=reason, error_code=str(code))
    return Outcome(status)


def _event(message: OutboundMessage, outcome: str, **detail) -> None:
    CaseEvent.objects.create(
        case_id=message.case_id,
        kind=EventKind.MESSAGE,
        detail={"message": message.pk, "channel": message.channel, "outcome": outcome, **detail},
    )


def apply_provider_status(message: OutboundMessage, provider_status: str, *, error_code: str = "") -> bool:
    """Move a message forward to the provider's status; never backwards. Returns True if it moved."""
    mapping = {
        "sent": MessageStatus.SENT,
        "delivered": MessageStatus.DELIVERED,
        "undelivered": MessageStatus.UNDELIVERED,
        "failed": MessageStatus.FAILED,
    }
    status = mapping.get(provider_status)
    if status is None:
        return False
    lower = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status] and s != MessageStatus.SUPPRESSED]
    now = timezone.now()
    fields = {"status": status, "updated_at": now}
    if status == MessageStatus.DELIVERED:
        fields["delivered_at"] = now
    if error_code:
        fields["error_code"] = error_code[:16]
    if status in (MessageStatus.SENT, MessageStatus.DELIVERED):
        fields["sent_at"] = message.sent_at or now
    moved = OutboundMessage.objects.filter(pk=message.pk, status__in=lower).update(**fields)
    if moved and error_code == "21610" and message.channel == Channel.SMS:
        sms_opt_out_record(phone=message.to, source="twilio_21610", keyword="")
    return bool(moved)
