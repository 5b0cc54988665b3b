"""The outbox end to end: the sweep queues, dispatch sends through the real twilio client
to the loopback server, retries, opt-outs, receipts, webhooks and reconciliation."""

import datetime as dt

import pytest
import time_machine
from django.test import override_settings
from twilio.request_validator import RequestValidator

from cases.models import Borrower, CaseEvent
from cases.services import payment_record, sweep_run
from notifications.dispatch import dispatch_message
from notifications.models import DeliveryReceipt, MessageStatus, OutboundMessage, SmsOptOut
from notifications.reconcile import reconcile_stuck
from tests.factories import BorrowerFactory, LoanFactory, loan_with_schedule

pytestmark = pytest.mark.django_db
# 11:00 in Shanghai: inside the window for the default borrowers.
MORNING = dt.datetime(2026, 6, 2, 3, 0, tzinfo=dt.UTC)
AS_OF = dt.date(2026, 6, 2)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(MORNING, tick=True):
        yield


def overdue_loan(days=2, **borrower):
    return loan_with_schedule([AS_OF - dt.timedelta(days=days)], borrower=BorrowerFactory(**borrower))


def queued_sms():
    return list(OutboundMessage.objects.filter(channel="sms").order_by("pk"))


def test_the_sweep_queues_rendered_messages_once_in_the_borrowers_language():
    overdue_loan(name="李娜", language="zh-hans")
    overdue_loan(name="Jane Roe", language="en", timezone="Europe/London")

    sweep_run(as_of=AS_OF)
    sweep_run(as_of=AS_OF)

    messages = list(OutboundMessage.objects.order_by("language", "channel"))
    assert [(m.language, m.channel) for m in messages] == [
        ("en", "email"),
        ("en", "sms"),
        ("zh-hans", "email"),
        ("zh-hans", "sms"),
    ]
    zh_sms = messages[3]
    assert "李娜" in zh_sms.body and "退订" in zh_sms.body
    assert "Jane Roe" in messages[1].body and "STOP" in messages[1].body
    assert all(m.status == MessageStatus.QUEUED for m in messages)
    assert len({m.idempotency_key for m in messages}) == 4


def test_a_message_is_sent_once_even_when_its_task_is_delivered_twice(twilio_server):
    overdue_loan()
    sweep_run(as_of=AS_OF)
    message = queued_sms()[0]

    first = dispatch_message(message.pk)
    second = dispatch_message(message.pk)

    assert first.status == MessageStatus.SENT
    assert second is None
    assert len(twilio_server.created) == 1
    message.refresh_from_db()
    assert message.provider_id.startswith("SM")
    assert twilio_server.created[0].to == message.to
    assert twilio_server.created[0].status_callback.endswith("/webhooks/twilio/status/")


@pytest.mark.parametrize("status", [429, 500])
def test_transient_errors_are_retried_with_backoff_then_sent(twilio_server, status):
    overdue_loan()
    sweep_run(as_of=AS_OF)
    message = queued_sms()[0]
    twilio_server.fail_next(2, status=status)

    outcomes = []
    for _ in range(3):
        outcome = dispatch_message(message.pk, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=3))
        outcomes.append(outcome.status)

    assert outcomes == [MessageStatus.QUEUED, MessageStatus.QUEUED, MessageStatus.SENT]
    message.refresh_from_db()
    assert message.attempts == 3
    assert len(twilio_server.created) == 1


def test_a_retry_waits_for_its_backoff(twilio_server):
    overdue_loan()
    sweep_run(as_of=AS_OF)
    message = queued_sms()[0]
    twilio_server.fail_next(1, status=500)
    retry = dispatch_message(message.pk)
    assert retry.retry_in >= 15
    assert dispatch_message(message.pk) is None  # not due yet
    assert twilio_server.created == []


def test_error_21610_records_the_opt_out_and_suppresses(twilio_server):
    loan = overdue_loan()
    sweep_run(as_of=AS_OF)
    message = queued_sms()[0]
    twilio_server.reject(message.to, code=21610)

    outcome = dispatch_message(message.pk)

    assert outcome.status == MessageStatus.SUPPRESSED
    message.refresh_from_db()
    assert (message.reason, message.error_code) == ("opt_out", "21610")
    assert Borrower.objects.get(pk=loan.borrower_id).sms_opt_out is True
    assert SmsOptOut.objects.get(phone=message.to).opted_out is True


def test_a_permanent_error_fails_at_once_with_its_code(twilio_server):
    overdue_loan()
    sweep_run(as_of=AS_OF)
    message = queued_sms()[0]
    twilio_server.reject(message.to, code=21211)

    assert dispatch_message(message.pk).status == MessageStatus.FAILED
    message.refresh_from_db()
    assert (message.error_code, message.attempts) == ("21211", 1)


def test_resolving_a_case_cancels_its_unsent_messages():
    loan = overdue_loan()
    sweep_run(as_of=AS_OF)
    payment_record(external_id="P1", loan=loan.external_id, amount="1000.00", paid_at="2026-06-02T10:00:00+08:00")
    reasons = set(OutboundMessage.objects.values_list("status", "reason"))
    assert reasons == {(MessageStatus.SUPPRESSED, "resolved")}


def test_a_message_outside_the_window_is_deferred_not_dropped(twilio_server):
    overdue_loan(timezone="America/Los_Angeles")  # 20:00 the day before there: in the window
    overdue_loan(timezone="Europe/London")  # 04:00 there: outside
    sweep_run(as_of=AS_OF)
    outcomes = {m.borrower.timezone: dispatch_message(m.pk).status for m in queued_sms()}
    assert outcomes == {"America/Los_Angeles": MessageStatus.SENT, "Europe/London": MessageStatus.DEFERRED}
    deferred = OutboundMessage.objects.get(status=MessageStatus.DEFERRED)
    assert deferred.reason == "quiet_hours"
    assert deferred.scheduled_for == dt.datetime(2026, 6, 2, 7, 0, tzinfo=dt.UTC)  # 08:00 BST


def test_a_stuck_message_without_a_provider_id_goes_to_review_and_is_never_resent(twilio_server):
    overdue_loan()
    sweep_run(as_of=AS_OF)
    message = queued_sms()[0]
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENDING, claimed_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    )

    counts = reconcile_stuck()

    assert counts["needs_review"] == 1
    message.refresh_from_db()
    assert (message.status, message.reason) == (MessageStatus.NEEDS_REVIEW, "unknown_outcome")
    assert dispatch_message(message.pk) is None
    assert twilio_server.created == []


# --- webhooks --------------------------------------------------------------------------

TOKEN = "test-auth-token-0123456789abcdef"
BASE = "https://portal.example.com"


def signed_post(client, path, data, *, token=TOKEN, signature=None):
    if signature is None:
        signature = RequestValidator(token).compute_signature(BASE + path, data)
    return client.post(path, data, HTTP_X_TWILIO_SIGNATURE=signature)


@pytest.fixture
def webhook_settings(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = BASE


@pytest.fixture
def sent_message(twilio_server):
    overdue_loan()
    sweep_run(as_of=AS_OF)
    message = queued_sms()[0]
    dispatch_message(message.pk)
    message.refresh_from_db()
    return message


def status(client, sid, value, **extra):
    return signed_post(client, "/webhooks/twilio/status/", {"MessageSid": sid, "MessageStatus": value, **extra})


def test_status_callbacks_move_forward_only_and_repeats_are_harmless(client, sent_message, webhook_settings):
    sid = sent_message.provider_id
    assert status(client, sid, "delivered").status_code == 204
    assert status(client, sid, "sent").status_code == 204  # out of order
    assert status(client, sid, "delivered").status_code == 204  # repeated
    sent_message.refresh_from_db()
    assert sent_message.status == MessageStatus.DELIVERED
    assert sent_message.delivered_at is not None


def test_a_callback_that_arrives_before_the_provider_id_is_applied_later(client, twilio_server, webhook_settings):
    overdue_loan()
    sweep_run(as_of=AS_OF)
    message = queued_sms()[0]
    early_sid = "SM" + "0" * 32
    status(client, early_sid, "delivered")
    assert DeliveryReceipt.objects.get(provider_id=early_sid).applied is False
    OutboundMessage.objects.filter(pk=message.pk).update(status=MessageStatus.SENT, provider_id=early_sid)
    from notifications.receipts import receipts_apply_pending

    assert receipts_apply_pending(provider_id=early_sid) is True
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


@pytest.mark.parametrize("signature", ["", "bm90LWEtc2lnbmF0dXJl"])
def test_a_bad_or_missing_signature_gets_403_and_changes_nothing(client, sent_message, webhook_settings, signature):
    response = signed_post(
        client,
        "/webhooks/twilio/status/",
        {"MessageSid": sent_message.provider_id, "MessageStatus": "delivered"},
        signature=signature,
    )
    assert response.status_code == 403
    sent_message.refresh_from_db()
    assert sent_message.status == MessageStatus.SENT
    assert not DeliveryReceipt.objects.exists()


def test_a_failed_callback_with_21610_records_an_opt_out(client, sent_message, webhook_settings):
    status(client, sent_message.provider_id, "failed", ErrorCode="21610")
    assert SmsOptOut.objects.filter(phone=sent_message.to, opted_out=True).exists()


@pytest.mark.parametrize("keyword", ["STOP", "stop", "退订", "TD", "Unsubscribe"])
def test_inbound_opt_out_keywords_stop_sms_and_answer_in_twiml(client, webhook_settings, keyword):
    borrower = BorrowerFactory(language="zh-hans")
    LoanFactory(borrower=borrower)
    response = signed_post(
        client, "/webhooks/twilio/inbound/", {"From": borrower.phone, "Body": keyword, "MessageSid": "SMin1"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/xml"
    assert b"<Response><Message>" in response.content
    borrower.refresh_from_db()
    assert borrower.sms_opt_out is True


def test_start_opts_back_in_and_a_repeated_inbound_changes_nothing(client, webhook_settings):
    borrower = BorrowerFactory(language="en")
    signed_post(client, "/webhooks/twilio/inbound/", {"From": borrower.phone, "Body": "STOP", "MessageSid": "SMa"})
    signed_post(client, "/webhooks/twilio/inbound/", {"From": borrower.phone, "Body": "START", "MessageSid": "SMb"})
    borrower.refresh_from_db()
    assert borrower.sms_opt_out is False
    # Twilio retries the STOP: already handled, so the borrower stays opted in.
    signed_post(client, "/webhooks/twilio/inbound/", {"From": borrower.phone, "Body": "STOP", "MessageSid": "SMa"})
    borrower.refresh_from_db()
    assert borrower.sms_opt_out is False


def test_other_inbound_text_changes_nothing(client, webhook_settings):
    borrower = BorrowerFactory()
    response = signed_post(
        client, "/webhooks/twilio/inbound/", {"From": borrower.phone, "Body": "I will pay Friday", "MessageSid": "SMc"}
    )
    assert response.content.strip().endswith(b"<Response />")
    borrower.refresh_from_db()
    assert borrower.sms_opt_out is False


def test_every_outcome_is_on_the_case_timeline(twilio_server):
    loan = overdue_loan()
    sweep_run(as_of=AS_OF)
    for message in OutboundMessage.objects.all():
        dispatch_message(message.pk)
    outcomes = sorted(e.detail["outcome"] for e in CaseEvent.objects.filter(case__loan=loan, kind="message"))
    assert outcomes == ["sent", "sent"]


@override_settings(SMS_BACKEND="locmem")
def test_email_goes_through_the_smtp_server_with_both_parts(smtp_server):
    overdue_loan(name="王芳", language="zh-hans")
    sweep_run(as_of=AS_OF)
    email = OutboundMessage.objects.get(channel="email")
    assert dispatch_message(email.pk).status == MessageStatus.SENT
    received = smtp_server.wait_for(1)[0].message
    assert received["Content-Language"] == "zh-Hans"
    types = sorted(part.get_content_type() for part in received.walk() if not part.is_multipart())
    assert types == ["text/html", "text/plain"]
