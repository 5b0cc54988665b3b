"""Dispatch by the chunk: one claim per chunk with the policy checked at send time for every
message in it, a fixed number of queries however large the chunk, two workers on the same
chunk sending each message once, and provider ids recovered for messages a dead worker
sent but never recorded."""

import datetime as dt
import threading
from collections import Counter

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.models import Case, CaseEvent, CaseStatus, Hold, HoldReason
from cases.services import sweep_run
from notifications.channels.sms import get_sms_backend
from notifications.dispatch import dispatch_messages_now
from notifications.models import CompliancePolicy, MessageStatus, OutboundMessage, SmsOptOut
from notifications.reconcile import reconcile_stuck
from tests.factories import BorrowerFactory, loan_with_schedule

# 11:00 in Shanghai: inside the window for the default borrowers.
MORNING = dt.datetime(2026, 6, 2, 3, 0, tzinfo=dt.UTC)
AS_OF = dt.date(2026, 6, 2)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(MORNING, tick=True):
        yield


def queue_sms(n: int, **borrower) -> list[OutboundMessage]:
    for _ in range(n):
        loan_with_schedule([AS_OF - dt.timedelta(days=2)], borrower=BorrowerFactory(**borrower))
    sweep_run(as_of=AS_OF)
    return list(OutboundMessage.objects.filter(channel="sms").select_related("case").order_by("pk"))


def statuses(messages) -> dict[int, tuple[str, str]]:
    rows = OutboundMessage.objects.filter(pk__in=[m.pk for m in messages]).values_list("pk", "status", "reason")
    return {pk: (status, reason) for pk, status, reason in rows}


@pytest.mark.django_db
def test_what_changed_after_queueing_is_applied_to_every_message_of_the_chunk(sms_outbox):
    held, opted_out, resolved, fine = queue_sms(4)
    # Between the sweep and the worker: a dispute, a STOP, a payment that resolved the case.
    Hold.objects.create(case=held.case, reason=HoldReason.DISPUTE, note="says the amount is wrong")
    SmsOptOut.objects.create(phone=opted_out.to, source="keyword", keyword="STOP")
    Case.objects.filter(pk=resolved.case_id).update(status=CaseStatus.RESOLVED)

    outcomes = dispatch_messages_now([held.pk, opted_out.pk, resolved.pk, fine.pk])

    assert {pk: o.status for pk, o in outcomes.items()} == {
        held.pk: MessageStatus.SUPPRESSED,
        opted_out.pk: MessageStatus.SUPPRESSED,
        resolved.pk: MessageStatus.SUPPRESSED,
        fine.pk: MessageStatus.SENT,
    }
    assert statuses([held, opted_out, resolved]) == {
        held.pk: (MessageStatus.SUPPRESSED, "hold:dispute"),
        opted_out.pk: (MessageStatus.SUPPRESSED, "opt_out"),
        resolved.pk: (MessageStatus.SUPPRESSED, "resolved"),
    }
    assert [entry["to"] for entry in sms_outbox] == [fine.to]
    suppressed_events = CaseEvent.objects.filter(kind="message", detail__outcome="suppressed")
    assert sorted(e.detail["message"] for e in suppressed_events) == sorted([held.pk, opted_out.pk, resolved.pk])


@pytest.mark.django_db
def test_a_policy_edit_after_queueing_defers_at_send_time(sms_outbox):
    (message,) = queue_sms(1)
    policy = CompliancePolicy.current()
    policy.window_start = dt.time(12, 0)  # 11:00 in Shanghai is now outside the window
    policy.save()

    outcome = dispatch_messages_now([message.pk])[message.pk]

    assert outcome.status == MessageStatus.DEFERRED
    message.refresh_from_db()
    assert (message.reason, message.scheduled_for) == ("quiet_hours", dt.datetime(2026, 6, 2, 4, 0, tzinfo=dt.UTC))
    assert sms_outbox == []


@pytest.mark.django_db
def test_two_messages_to_one_borrower_in_a_chunk_count_together_against_the_daily_cap(sms_outbox):
    (first,) = queue_sms(1)
    second = OutboundMessage.objects.create(
        case=first.case,
        borrower=first.borrower,
        channel="sms",
        to=first.to,
        language=first.language,
        template=first.template,
        action="sms",
        repeat_number=1,
        idempotency_key="second-of-the-day",
        body="Second",
    )

    outcomes = dispatch_messages_now([first.pk, second.pk])

    assert (outcomes[first.pk].status, outcomes[second.pk].status) == (MessageStatus.SENT, MessageStatus.DEFERRED)
    second.refresh_from_db()
    assert second.reason == "daily_sms_cap"
    assert len(sms_outbox) == 1


@pytest.mark.django_db
def test_a_chunk_costs_the_same_queries_for_two_messages_as_for_twelve(sms_outbox):
    small = queue_sms(2)
    with CaptureQueriesContext(connection) as two:
        dispatch_messages_now([m.pk for m in small])
    large = [m for m in queue_sms(12) if m.status == MessageStatus.QUEUED]
    assert len(large) == 12
    with CaptureQueriesContext(connection) as twelve:
        outcomes = dispatch_messages_now([m.pk for m in large])

    assert {o.status for o in outcomes.values()} == {MessageStatus.SENT}
    assert len(twelve) == len(two)
    assert len(sms_outbox) == 14
    sent = OutboundMessage.objects.filter(pk__in=[m.pk for m in large])
    assert all(m.status == MessageStatus.SENT and m.provider_id == f"locmem-{m.pk}" for m in sent)
    assert CaseEvent.objects.filter(kind="message", detail__outcome="sent").count() == 14


@pytest.mark.django_db(transaction=True)
def test_two_workers_given_the_same_chunk_send_each_message_once(twilio_server):
    messages = queue_sms(30)
    ids = [m.pk for m in messages]
    twilio_server.latency = 0.01  # both workers are mid-chunk at the same time
    start = threading.Barrier(2)
    results: list[dict] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(dispatch_messages_now(ids))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 2
    sent_by = Counter(pk for outcomes in results for pk, o in outcomes.items() if o.status == MessageStatus.SENT)
    assert set(sent_by) == set(ids) and set(sent_by.values()) == {1}
    assert Counter(r.to for r in twilio_server.created) == Counter(m.to for m in messages)
    assert set(OutboundMessage.objects.filter(pk__in=ids).values_list("status", flat=True)) == {MessageStatus.SENT}


@pytest.mark.django_db
def test_reconcile_recovers_the_provider_id_of_a_message_sent_but_never_recorded(twilio_server):
    sent, unsent, ambiguous = queue_sms(3)
    claimed_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    OutboundMessage.objects.filter(pk__in=[sent.pk, unsent.pk, ambiguous.pk]).update(
        status=MessageStatus.SENDING, claimed_at=claimed_at
    )
    backend = get_sms_backend()
    # A worker sent these and was killed before its chunk was recorded. Two requests for
    # one number cannot be told apart: which of them was this row's?
    with time_machine.travel(claimed_at + dt.timedelta(seconds=5), tick=False):
        accepted = backend.send(to=sent.to, body=sent.body, message_id=sent.pk)
        backend.send(to=ambiguous.to, body=ambiguous.body, message_id=ambiguous.pk)
        backend.send(to=ambiguous.to, body="another", message_id=0)
    twilio_server.set_status(accepted.provider_id, "delivered")

    counts = reconcile_stuck()

    assert (counts["recovered"], counts["needs_review"]) == (1, 2)
    sent.refresh_from_db()
    assert (sent.status, sent.provider_id) == (MessageStatus.DELIVERED, accepted.provider_id)
    assert statuses([unsent, ambiguous]) == {
        unsent.pk: (MessageStatus.NEEDS_REVIEW, "unknown_outcome"),
        ambiguous.pk: (MessageStatus.NEEDS_REVIEW, "unknown_outcome"),
    }
    assert CaseEvent.objects.get(kind="message", detail__message=sent.pk, detail__outcome="sent").detail["recovered"]
    assert len(twilio_server.created) == 3  # reconciling sent nothing
