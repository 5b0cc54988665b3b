"""Sending outbox messages: claim, check the policy, send, record. Loses nothing and sends
nothing twice. A task hands over a chunk of ids; the database work is done per chunk
wherever that is safe, and per message only where a crash could otherwise lose something.

1. One short transaction per chunk: lock the chunk's borrowers (so two workers cannot
   both pass the SMS caps for one borrower), lock the chunk's rows that are still pending
   and due (a second delivery of the same task, or another worker holding them, finds
   nothing to do), read the policy's facts for all of them with a fixed number of queries,
   and settle each row in one UPDATE: suppressed or deferred with the rule as the reason,
   or claimed (queued -> sending).
2. Outside any transaction, message by message: call the provider. A failure is recorded
   at once (retry later, failed, suppressed on 21610).
3. At the end of the chunk, one statement records every message sent: status, provider
   id, time, timeline event. A worker killed before that loses no provider id: the
   reconcile task finds rows left in ``sending`` and reads their ids back from the
   provider's list of messages to that number.

A worker that dies between 1 and 3 leaves rows in ``sending``; the redelivered task skips
them (they are no longer pending) and the reconcile task settles them from the provider's
records, or marks them ``needs_review`` when the provider cannot name exactly one message
for the row: a blind resend could text a borrower twice, which is itself a breach. That
includes the rows of the chunk not sent yet when the worker died: "the provider shows
nothing" is not proof that nothing went, so a person decides.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from cases.models import Borrower, CaseEvent, EventKind

from .channels.base import PermanentSendError, RecipientOptedOut, SendResult, TransientSendError
from .channels.email import send_email
from .channels.sms import SmsBackend, get_sms_backend
from .models import (
    PENDING_STATUSES,
    STATUS_RANK,
    Channel,
    CompliancePolicy,
    MessageStatus,
    OutboundMessage,
    Reason,
)
from .optouts import sms_opt_out_record
from .policy import DEFER, SUPPRESS, decide, policy_facts

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
    return dispatch_messages_now([message_id], now=now).get(message_id)


def dispatch_messages_now(message_ids: list[int], *, now: dt.datetime | None = None) -> dict[int, Outcome]:
    """Send the pending, due messages among ``message_ids``; the outcome of each one that
    was pending and due (the others are someone else's or already settled).

    A message whose send raises something unexpected is logged and left in ``sending``
    for the reconcile task; the rest of the chunk goes on.
    """
    now = now or timezone.now()
    claimed, outcomes = _claim(message_ids, now)
    backend: SmsBackend | None = None
    opted_out: set[str] = set()  # numbers that answered 21610 during this chunk
    sent: list[tuple[OutboundMessage, SendResult, dt.datetime]] = []
    try:
        for message in claimed:
            try:
                if message.channel == Channel.SMS:
                    if message.to in opted_out:
                        # Claimed before the number opted out a moment ago in this same chunk.
                        outcomes[message.pk] = _settle(message, MessageStatus.SUPPRESSED, reason=Reason.OPT_OUT)
                        continue
                    backend = backend or get_sms_backend()
                outcome = _deliver(message, backend, sent)
            except Exception:
                logger.exception("dispatch failed for message %s; the reconcile task will settle it", message.pk)
                continue
            outcomes[message.pk] = outcome
            if message.channel == Channel.SMS and message.reason == Reason.OPT_OUT:
                opted_out.add(message.to)
    finally:
        # Also when the task is interrupted by an exception (a time limit, a warm shutdown).
        _record_sent(sent)
    if sent:
        # A delivery receipt may have arrived before we knew the provider id.
        from .receipts import receipts_apply_pending_for

        receipts_apply_pending_for([result.provider_id for _, result, _ in sent])
    return outcomes


def _claim(message_ids: list[int], now: dt.datetime) -> tuple[list[OutboundMessage], dict[int, Outcome]]:
    """Decide every pending, due message of the chunk in one transaction; return the ones
    claimed for sending, and the outcomes of those suppressed or deferred."""
    pending = {"pk__in": message_ids, "status__in": PENDING_STATUSES, "scheduled_for__lte": now}
    with transaction.atomic():
        # Borrowers first and in id order: the order opt-out recording takes them in
        # (borrower, then its messages), so the two never deadlock.
        borrowers = {
            borrower.pk: borrower
            for borrower in Borrower.objects.select_for_update()
            .filter(pk__in=OutboundMessage.objects.filter(**pending).values("borrower_id"))
            .order_by("pk")
        }
        if not borrowers:
            return [], {}
        # A row that became pending after the borrowers were read (a retry put back) waits
        # for its own task: its borrower is not locked here.
        messages = list(
            OutboundMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("case", "template")
            .filter(**pending, borrower_id__in=list(borrowers))
            .order_by("pk")
        )
        if not messages:
            return [], {}
        for message in messages:
            message.borrower = borrowers[message.borrower_id]
        policy = CompliancePolicy.current()
        facts = policy_facts(messages, now=now)
        claimed: list[OutboundMessage] = []
        outcomes: dict[int, Outcome] = {}
        events: list[CaseEvent] = []
        for message in messages:
            decision = decide(message, now=now, policy=policy, facts=facts)
            message.updated_at = now
            if decision.action == SUPPRESS:
                message.status, message.reason = MessageStatus.SUPPRESSED, decision.reason
                events.append(_event_row(message, "suppressed", reason=decision.reason))
            elif decision.action == DEFER:
                message.status, message.reason = MessageStatus.DEFERRED, decision.reason
                message.scheduled_for = decision.not_before
            else:
                message.status, message.reason = MessageStatus.SENDING, ""
                message.claimed_at, message.attempts = now, message.attempts + 1
                claimed.append(message)
                continue
            outcomes[message.pk] = Outcome(message.status)
        _write_claims(claimed, [m for m in messages if m.status != MessageStatus.SENDING], now)
        if events:
            CaseEvent.objects.bulk_create(events)
    return claimed, outcomes


def _write_claims(claimed: list[OutboundMessage], settled: list[OutboundMessage], now: dt.datetime) -> None:
    """Store the chunk's decisions: one UPDATE for the claimed rows (almost always the whole
    chunk), one per distinct outcome for the others. Cheaper than ``bulk_update``, whose
    CASE per row and field costs more to build than the rest of the claim."""
    if claimed:
        OutboundMessage.objects.filter(pk__in=[m.pk for m in claimed]).update(
            status=MessageStatus.SENDING, reason="", claimed_at=now, attempts=F("attempts") + 1, updated_at=now
        )
    groups: dict[tuple[str, str, dt.datetime], list[int]] = {}
    for message in settled:
        groups.setdefault((message.status, message.reason, message.scheduled_for), []).append(message.pk)
    for (status, reason, scheduled_for), ids in groups.items():
        OutboundMessage.objects.filter(pk__in=ids).update(
            status=status, reason=reason, scheduled_for=scheduled_for, updated_at=now
        )


def _deliver(
    message: OutboundMessage, backend: SmsBackend | None, sent: list[tuple[OutboundMessage, SendResult, dt.datetime]]
) -> Outcome:
    """Send one claimed message. Failures are recorded at once; a success is added to
    ``sent``, which the caller records for the whole chunk."""
    try:
        result = _send(message, backend)
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
        message.status = MessageStatus.QUEUED
        return Outcome(MessageStatus.QUEUED, retry_in=delay)
    sent.append((message, result, timezone.now()))
    return Outcome(MessageStatus.SENT)


def _send(message: OutboundMessage, backend: SmsBackend | None) -> SendResult:
    if message.channel == Channel.SMS:
        return (backend or get_sms_backend()).send(to=message.to, body=message.body, message_id=message.pk)
    return send_email(
        to=message.to,
        subject=message.subject,
        text=message.body,
        html=message.html_body,
        message_id=message.pk,
        language=message.language,
    )


# One statement for the chunk: the conditional UPDATEs and the timeline events commit
# together or not at all, in a single round trip.
_RECORD_SENT_SQL = """
WITH batch (id, provider_id, sent_at) AS (VALUES {rows}),
sent AS (
    UPDATE {outbox} AS m
    SET status = %s, provider_id = batch.provider_id, sent_at = batch.sent_at, error_code = '', error_message = '',
        updated_at = batch.sent_at
    FROM batch
    WHERE m.id = batch.id AND m.status = %s
    RETURNING m.id, m.case_id, m.channel, batch.sent_at
)
INSERT INTO {events} (case_id, at, kind, actor_id, detail)
SELECT case_id, sent_at, %s, NULL, jsonb_build_object('message', id, 'channel', channel, 'outcome', 'sent')
FROM sent
RETURNING (detail ->> 'message')::bigint
"""


def _record_sent(sent: list[tuple[OutboundMessage, SendResult, dt.datetime]]) -> None:
    """Record the chunk's sent messages: status, provider id, time and timeline event.

    Once per chunk rather than per message. A worker killed before this runs leaves the
    chunk's sent messages in ``sending`` without their provider ids; the reconcile task
    then reads them back from the provider (``reconcile._recover_provider_id``), so no id
    of a message that went out is lost, and none is sent again. The UPDATE is conditional
    on ``sending``: a row reconcile settled meanwhile is left as it is.
    """
    if not sent:
        return
    if connection.vendor == "postgresql":
        sql = _RECORD_SENT_SQL.format(
            rows=", ".join(["(%s::bigint, %s::varchar, %s::timestamptz)"] * len(sent)),
            outbox=connection.ops.quote_name(OutboundMessage._meta.db_table),
            events=connection.ops.quote_name(CaseEvent._meta.db_table),
        )
        params: list = [value for message, result, at in sent for value in (message.pk, result.provider_id, at)]
        params += [MessageStatus.SENT.value, MessageStatus.SENDING.value, EventKind.MESSAGE.value]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            recorded = {row[0] for row in cursor.fetchall()}
    else:  # SQLite (the laptop demo) has no UPDATE inside WITH: the same, row by row.
        recorded = set()
        with transaction.atomic():
            for message, result, at in sent:
                if OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
                    status=MessageStatus.SENT,
                    provider_id=result.provider_id,
                    sent_at=at,
                    error_code="",
                    error_message="",
                    updated_at=at,
                ):
                    _event(message, "sent")
                    recorded.add(message.pk)
    for message, result, at in sent:
        if message.pk in recorded:
            message.status, message.provider_id, message.sent_at = MessageStatus.SENT, result.provider_id, at


def _settle(message: OutboundMessage, status: str, *, reason: str, error: Exception | None = None) -> Outcome:
    code = str(getattr(error, "code", "") or "") if error is not None else ""
    text = getattr(error, "message", str(error)) if error is not None else ""
    with transaction.atomic():
        moved = OutboundMessage.objects.filter(pk=message.pk, status=MessageStatus.SENDING).update(
            status=status, reason=reason, error_code=code[:16], error_message=text[:1000], updated_at=timezone.now()
        )
        if moved:
            _event(message, status, reason=reason, error_code=code)
    message.status, message.reason = status, reason
    return Outcome(status)


def _event_row(message: OutboundMessage, outcome: str, **detail) -> CaseEvent:
    return CaseEvent(
        case_id=message.case_id,
        kind=EventKind.MESSAGE,
        detail={"message": message.pk, "channel": message.channel, "outcome": outcome, **detail},
    )


def _event(message: OutboundMessage, outcome: str, **detail) -> None:
    _event_row(message, outcome, **detail).save()


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
