"""Writing to the outbox: stage messages in bulk, manual sends, cancellations.

Rows are inserted inside the caller's transaction (the sweep's, or a collector's
request); dispatch tasks are queued only once that transaction commits, so a rolled-back
sweep never sends anything and a committed one never loses a message.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.template import TemplateSyntaxError
from django.utils import timezone

from cases.actions import StageEntry
from cases.models import Case, CaseEvent, EventKind

from .models import Channel, MessageStatus, MessageTemplate, OutboundMessage, Reason
from .policy import MANUAL_ACTION, Decision, decide
from .templating import build_contexts, find_templates, render

logger = logging.getLogger(__name__)


def stage_message_key(entry: StageEntry, action: str) -> str:
    """One message per case, stage entry, action and repeat number: the idempotency key."""
    return f"case:{entry.case_id}:stage:{entry.stage_code}:{action}:{entry.repeat_number}"


def queue_stage_messages(entries: list[StageEntry], channel: str) -> list[int]:
    """Render and insert the messages for a batch of stage entries; return the new ids.

    A fixed number of queries per batch: the cases and borrowers, the templates, the
    contexts, one bulk insert and one read of the ids. Keys that exist already (a rerun)
    are skipped by the unique index, so nothing is queued twice.
    """
    if not entries:
        return []
    case_ids = [e.case_id for e in entries]
    recipients = {
        row["id"]: row
        for row in Case.objects.filter(pk__in=case_ids).values(
            "id", "loan__borrower_id", "loan__borrower__language", "loan__borrower__phone", "loan__borrower__email"
        )
    }
    templates = find_templates({e.stage_id for e in entries}, channel)
    contexts = build_contexts(case_ids, channel=channel)
    now = timezone.now()
    rows: list[OutboundMessage] = []
    for entry in entries:
        recipient = recipients.get(entry.case_id)
        if recipient is None:
            continue
        language = recipient["loan__borrower__language"]
        template = templates.get((entry.stage_id, language))
        to = recipient["loan__borrower__phone"] if channel == Channel.SMS else recipient["loan__borrower__email"]
        row = OutboundMessage(
            case_id=entry.case_id,
            borrower_id=recipient["loan__borrower_id"],
            channel=channel,
            to=to or "",
            language=language,
            stage_id=entry.stage_id,
            action=channel,
            repeat_number=entry.repeat_number,
            idempotency_key=stage_message_key(entry, channel),
            scheduled_for=now,
            created_at=now,
        )
        if template is None:
            # A configuration gap, kept visible in the outbox rather than silently skipped.
            row.status, row.reason, row.body = MessageStatus.SUPPRESSED, Reason.TEMPLATE_NOT_APPROVED, ""
            row.error_message = f"No active {channel} template for stage {entry.stage_code} in {language}."
        else:
            row.template = template
            try:
                rendered = render(template, contexts[entry.case_id])
            except TemplateSyntaxError as exc:
                # Text that bypassed the admin's checks must not stop a whole sweep batch.
                row.status, row.reason, row.body = MessageStatus.SUPPRESSED, Reason.TEMPLATE_NOT_APPROVED, ""
                row.error_message = f"Template {template.name} does not render: {exc}"[:1000]
            else:
                row.subject, row.body, row.html_body = rendered.subject, rendered.body, rendered.html_body
        rows.append(row)
    OutboundMessage.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    keys = [row.idempotency_key for row in rows]
    ids = list(
        OutboundMessage.objects.filter(
            idempotency_key__in=keys, status=MessageStatus.QUEUED, created_at=now
        ).values_list("pk", flat=True)
    )
    enqueue_on_commit(ids)
    return ids


def enqueue_on_commit(message_ids: Iterable[int]) -> None:
    ids = list(message_ids)
    if ids:
        transaction.on_commit(lambda: enqueue_dispatch(ids))


def enqueue_dispatch(message_ids: list[int]) -> None:
    """Hand message ids to the workers, a few per task. Ids only: no personal data in the
    broker. If this fails (the broker is down), the rows stay queued and the periodic
    release task picks them up: nothing is lost."""
    from .tasks import CHUNK, dispatch_messages

    try:
        for start in range(0, len(message_ids), CHUNK):
            dispatch_messages.delay(message_ids[start : start + CHUNK])
    except Exception:  # the broker being down must never undo a committed sweep
        logger.warning("Could not queue dispatch of %d messages; the release task will retry", len(message_ids))


def cancel_for_cases(case_ids: list[int], *, reason: str) -> int:
    """Suppress the messages of these cases that have not gone out yet."""
    return OutboundMessage.objects.filter(
        case_id__in=case_ids, status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED]
    ).update(status=MessageStatus.SUPPRESSED, reason=reason, updated_at=timezone.now())


def manual_preview(*, case: Case, template: MessageTemplate, now: dt.datetime | None = None) -> tuple[str, Decision]:
    """The text a collector would send and whether the policy lets it go now."""
    now = now or timezone.now()
    message = _manual_message(case, template, now)
    return message.body, decide(message, now=now)


@transaction.atomic
def message_send_manual(
    *, case: Case, template: MessageTemplate, by, now: dt.datetime | None = None
) -> tuple[OutboundMessage, Decision]:
    """A collector sends an approved template from a case through the outbox and the
    policy. Returns the message and the policy's decision to tell the collector plainly
    whether it goes now, later (and when), or not at all (and why)."""
    now = now or timezone.now()
    message = _manual_message(case, template, now)
    message.created_by = by
    message.idempotency_key = f"manual:{case.pk}:{uuid.uuid4().hex}"
    decision = decide(message, now=now)
    message.save()
    CaseEvent.objects.create(
        case=case,
        kind=EventKind.MESSAGE,
        actor=by,
        at=now,
        detail={"message": message.pk, "channel": message.channel, "template": template.name, "queued": True},
    )
    enqueue_on_commit([message.pk])
    return message, decision


def _manual_message(case: Case, template: MessageTemplate, now: dt.datetime) -> OutboundMessage:
    borrower = case.loan.borrower
    context = build_contexts([case.pk], channel=template.channel)[case.pk]
    rendered = render(template, context)
    return OutboundMessage(
        case=case,
        borrower=borrower,
        channel=template.channel,
        to=(borrower.phone if template.channel == Channel.SMS else borrower.email) or "",
        language=template.language,
        template=template,
        stage=case.stage,
        action=MANUAL_ACTION,
        subject=rendered.subject,
        body=rendered.body,
        html_body=rendered.html_body,
        scheduled_for=now,
        created_at=now,
    )
