"""SMS and email channels: the real twilio client against the loopback Twilio, Django's
SMTP backend against a real aiosmtpd server."""

import logging
import re
import socket
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from twilio.request_validator import RequestValidator

from notifications.channels.base import PermanentSendError, RecipientOptedOut, SendResult, TransientSendError
from notifications.channels.email import send_email
from notifications.channels.sms import (
    ConsoleSmsBackend,
    LocmemSmsBackend,
    TwilioSmsBackend,
    get_sms_backend,
    mask_phone,
)

BORROWER = "+8613812345678"
SID = re.compile(r"^SM[0-9a-f]{32}$")
# Real Chinese punctuation (full-width comma and colon) on purpose: it must survive encoding.
SMS_ZH = "您的还款已逾期，请尽快处理。回复TD退订"  # noqa: RUF001
SUBJECT_ZH = "还款提醒：您的贷款已逾期"  # noqa: RUF001
TEXT_ZH = "您好，您的贷款已逾期 5 天。"  # noqa: RUF001
HTML_ZH = "<p>您好，您的贷款已逾期 <strong>5</strong> 天。</p>"  # noqa: RUF001


# --- Twilio -------------------------------------------------------------------------------


def test_it_sends_through_twilio(twilio_server, settings):
    settings.PUBLIC_BASE_URL = "https://portal.example.com"

    result = get_sms_backend().send(to=BORROWER, body="Your payment is due. Reply STOP to opt out.", message_id=12)

    assert SID.match(result.provider_id)
    assert result.status == "queued"
    [request] = twilio_server.requests
    assert request.path == f"/2010-04-01/Accounts/{twilio_server.account_sid}/Messages.json"
    assert request.auth == (twilio_server.account_sid, twilio_server.auth_token)
    assert request.to == BORROWER
    assert request.body == "Your payment is due. Reply STOP to opt out."
    assert request.from_ == "+15005550006"
    assert request.messaging_service_sid is None
    assert request.status_callback == "https://portal.example.com/webhooks/twilio/status/"
    assert request.sid == result.provider_id


def test_it_sends_chinese_text_intact(twilio_server):
    result = get_sms_backend().send(to=BORROWER, body=SMS_ZH, message_id=13)

    assert twilio_server.requests[0].body == SMS_ZH
    assert twilio_server.message(result.provider_id)["num_segments"] == "1"


def test_it_uses_the_messaging_service_when_set(twilio_server, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "a" * 32

    get_sms_backend().send(to=BORROWER, body="Hello", message_id=1)

    [request] = twilio_server.requests
    assert request.messaging_service_sid == "MG" + "a" * 32
    assert request.from_ is None


def test_it_reuses_one_twilio_client(twilio_server):
    assert get_sms_backend().client is get_sms_backend().client


def test_it_raises_transient_on_rate_limit_with_retry_after(twilio_server):
    twilio_server.fail_next(1, status=429, code=20429, retry_after=7)
    backend = get_sms_backend()

    with pytest.raises(TransientSendError) as caught:
        backend.send(to=BORROWER, body="Hello", message_id=1)

    assert caught.value.code == "20429"
    assert caught.value.retry_after == 7.0
    assert caught.value.outcome_unknown is False
    # The scripted failure is used up: the retry goes through.
    assert SID.match(backend.send(to=BORROWER, body="Hello", message_id=1).provider_id)
    assert [r.status for r in twilio_server.requests] == [429, 201]


def test_it_raises_transient_on_server_error(twilio_server):
    twilio_server.fail_next(2, status=500)
    backend = get_sms_backend()

    for _attempt in range(2):
        with pytest.raises(TransientSendError) as caught:
            backend.send(to=BORROWER, body="Hello", message_id=1)
        assert caught.value.code == "20500"
        assert caught.value.retry_after is None
    assert not twilio_server.created


def test_it_raises_permanent_for_an_invalid_number(twilio_server):
    twilio_server.reject("+15005550001", code=21211)
    backend = get_sms_backend()

    with pytest.raises(PermanentSendError) as caught:
        backend.send(to="+15005550001", body="Hello", message_id=1)

    assert caught.value.code == "21211"
    assert not isinstance(caught.value, TransientSendError | RecipientOptedOut)
    assert "Invalid 'To' Phone Number" in caught.value.message
    # Only that number is refused.
    assert SID.match(backend.send(to=BORROWER, body="Hello", message_id=2).provider_id)


def test_it_raises_opted_out_for_21610(twilio_server):
    twilio_server.reject(BORROWER, code=21610)

    with pytest.raises(RecipientOptedOut) as caught:
        get_sms_backend().send(to=BORROWER, body="Hello", message_id=1)

    assert isinstance(caught.value, PermanentSendError)
    assert caught.value.code == "21610"


def test_it_raises_permanent_with_twilios_code_for_wrong_credentials(twilio_server, settings):
    settings.TWILIO_AUTH_TOKEN = "not-the-token"

    with pytest.raises(PermanentSendError) as caught:
        get_sms_backend().send(to=BORROWER, body="Hello", message_id=1)

    assert caught.value.code == "20003"
    assert twilio_server.requests[0].status == 401


def test_it_raises_transient_when_twilio_is_unreachable(twilio_server):
    backend = get_sms_backend()
    twilio_server.stop()

    with pytest.raises(TransientSendError) as caught:
        backend.send(to=BORROWER, body="Hello", message_id=1)

    assert caught.value.code == "connection"
    # The connection was refused, so nothing can have been sent.
    assert caught.value.outcome_unknown is False

    twilio_server.start()
    assert SID.match(backend.send(to=BORROWER, body="Hello", message_id=1).provider_id)


def test_it_times_out_a_hung_provider(twilio_server, settings):
    settings.TWILIO_HTTP_TIMEOUT = 0.3
    twilio_server.latency = 3
    started = time.monotonic()

    with pytest.raises(TransientSendError) as caught:
        get_sms_backend().send(to=BORROWER, body="Hello", message_id=1)

    assert time.monotonic() - started < 2
    assert caught.value.code == "timeout"
    # Twilio had the request: the message may have gone out.
    assert caught.value.outcome_unknown is True


def test_it_fetches_the_current_status(twilio_server):
    backend = get_sms_backend()
    sid = backend.send(to=BORROWER, body="Hello", message_id=1).provider_id
    assert backend.fetch_status(sid) == "queued"

    twilio_server.set_status(sid, "delivered")

    assert backend.fetch_status(sid) == "delivered"
    assert backend.fetch_status("SM" + "0" * 32) is None
    assert twilio_server.requests[-1].method == "GET"


def test_it_raises_transient_when_fetching_fails(twilio_server):
    backend = get_sms_backend()
    sid = backend.send(to=BORROWER, body="Hello", message_id=1).provider_id
    twilio_server.fail_next(status=503)

    with pytest.raises(TransientSendError) as caught:
        backend.fetch_status(sid)

    assert caught.value.code == "20503"


def test_it_sends_a_signed_status_callback(twilio_server, webhook_recorder):
    sid = get_sms_backend().send(to=BORROWER, body="Hello", message_id=1).provider_id

    assert twilio_server.send_status_callback(sid, "delivered") == 204

    [call] = webhook_recorder.wait_for(1)
    url = webhook_recorder.url + "/webhooks/twilio/status/"
    assert call["path"] == "/webhooks/twilio/status/"
    assert call["params"]["MessageSid"] == sid
    assert call["params"]["MessageStatus"] == "delivered"
    assert call["params"]["To"] == BORROWER
    assert call["params"]["AccountSid"] == twilio_server.account_sid
    assert "ErrorCode" not in call["params"]
    signature = call["headers"]["X-Twilio-Signature"]
    assert RequestValidator(twilio_server.auth_token).validate(url, call["params"], signature)
    assert not RequestValidator("another-token").validate(url, call["params"], signature)
    assert not RequestValidator(twilio_server.auth_token).validate(url, {**call["params"], "To": "+1"}, signature)
    assert twilio_server.message(sid)["status"] == "delivered"


def test_it_reports_the_error_code_in_a_failed_callback(twilio_server, webhook_recorder):
    sid = get_sms_backend().send(to=BORROWER, body="Hello", message_id=1).provider_id

    twilio_server.send_status_callback(sid, "undelivered", error_code=30005)

    [call] = webhook_recorder.wait_for(1)
    assert call["params"]["MessageStatus"] == "undelivered"
    assert call["params"]["ErrorCode"] == "30005"


def test_it_sends_sent_then_delivered_callbacks_automatically(twilio_server, webhook_recorder):
    twilio_server.auto_callbacks = True
    twilio_server.deliver_as("+15005550009", "undelivered", error_code=30003)
    backend = get_sms_backend()

    delivered = backend.send(to=BORROWER, body="Hello", message_id=1).provider_id
    webhook_recorder.wait_for(2)
    undelivered = backend.send(to="+15005550009", body="Hello", message_id=2).provider_id
    calls = webhook_recorder.wait_for(4)

    assert [(c["params"]["MessageSid"], c["params"]["MessageStatus"]) for c in calls] == [
        (delivered, "sent"),
        (delivered, "delivered"),
        (undelivered, "sent"),
        (undelivered, "undelivered"),
    ]
    assert calls[3]["params"]["ErrorCode"] == "30003"


def test_it_exposes_worker_environment(twilio_server):
    env = twilio_server.env()

    assert env["SMS_BACKEND"] == "twilio"
    assert env["TWILIO_API_BASE_URL"] == twilio_server.url
    assert re.fullmatch(r"AC[0-9a-f]{32}", env["TWILIO_ACCOUNT_SID"])
    assert env["TWILIO_AUTH_TOKEN"] == twilio_server.auth_token
    assert env["TWILIO_FROM_NUMBER"] == "+15005550006"


# --- choosing a backend ---------------------------------------------------------------------


def test_it_picks_the_backend_named_in_settings(settings):
    settings.SMS_BACKEND = "console"
    assert isinstance(get_sms_backend(), ConsoleSmsBackend)
    settings.SMS_BACKEND = "locmem"
    assert isinstance(get_sms_backend(), LocmemSmsBackend)
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = "AC" + "1" * 32
    settings.TWILIO_AUTH_TOKEN = "token"
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    assert isinstance(get_sms_backend(), TwilioSmsBackend)


def test_it_names_a_missing_twilio_setting(settings):
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = "token"
    settings.TWILIO_FROM_NUMBER = "+15005550006"

    with pytest.raises(ImproperlyConfigured, match="TWILIO_ACCOUNT_SID is not set"):
        get_sms_backend()


def test_it_names_a_missing_twilio_sender(settings):
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = "AC" + "1" * 32
    settings.TWILIO_AUTH_TOKEN = "token"
    settings.TWILIO_FROM_NUMBER = ""
    settings.TWILIO_MESSAGING_SERVICE_SID = ""

    with pytest.raises(ImproperlyConfigured, match="TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"):
        get_sms_backend()


def test_it_refuses_an_unknown_backend(settings):
    settings.SMS_BACKEND = "carrier-pigeon"

    with pytest.raises(ImproperlyConfigured, match="carrier-pigeon"):
        get_sms_backend()


# --- console and locmem ---------------------------------------------------------------------


def test_it_masks_the_number_in_console_output(settings, caplog):
    settings.SMS_BACKEND = "console"
    caplog.set_level(logging.INFO, logger="notifications.channels.sms")

    result = get_sms_backend().send(to=BORROWER, body="Payment due", message_id=12)

    assert result == SendResult(provider_id="console-12", status="sent")
    assert "SMS to +86138****5678 (message 12): Payment due" in caplog.text
    assert BORROWER not in caplog.text
    assert "12345678" not in caplog.text


def test_it_masks_short_numbers_too():
    assert mask_phone("+15005550006") == "+15005****0006"
    assert mask_phone("95588") == "****5588"
    assert mask_phone("123") == "****"


def test_it_records_in_the_locmem_outbox(sms_outbox):
    backend = get_sms_backend()

    result = backend.send(to=BORROWER, body="Payment due", message_id=7)

    assert result.provider_id == "locmem-7"
    assert sms_outbox == [
        {"to": BORROWER, "body": "Payment due", "message_id": 7, "provider_id": "locmem-7", "status": "sent"}
    ]
    sms_outbox[0]["status"] = "delivered"
    assert backend.fetch_status("locmem-7") == "delivered"
    assert backend.fetch_status("locmem-8") is None


# --- email ----------------------------------------------------------------------------------


def send(to: str = "borrower@example.com", **overrides) -> SendResult:
    fields = {
        "to": to,
        "subject": SUBJECT_ZH,
        "text": TEXT_ZH,
        "html": HTML_ZH,
        "message_id": 42,
        "language": "zh-hans",
        **overrides,
    }
    return send_email(**fields)


def test_it_sends_text_and_html_parts(smtp_server, settings):
    settings.DEFAULT_FROM_EMAIL = "Collections <collections@lender.example>"

    result = send()

    [received] = smtp_server.wait_for(1)
    message = received.message
    assert received.rcpt_tos == ["borrower@example.com"]
    assert message["Subject"] == SUBJECT_ZH
    assert message["From"] == "Collections <collections@lender.example>"
    assert message["Content-Language"] == "zh-Hans"
    assert message["Message-ID"] == result.provider_id
    assert result.provider_id.endswith("@lender.example>")
    assert len(result.provider_id) <= 64
    assert result.status == "sent"
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content().strip() == TEXT_ZH
    assert message.get_body(("html",)).get_content().strip() == HTML_ZH


def test_it_sends_english_with_its_language(smtp_server):
    send(subject="Payment reminder", text="Hello", html="<p>Hello</p>", language="en")

    [received] = smtp_server.wait_for(1)
    assert received.message["Content-Language"] == "en"
    assert received.message["Subject"] == "Payment reminder"


def test_it_keeps_the_message_id_within_the_provider_id_column(smtp_server, settings):
    settings.DEFAULT_FROM_EMAIL = "collections@notifications.eu-west.collections-department.big-lender.example"

    result = send()

    assert len(result.provider_id) <= 64
    assert result.provider_id.endswith(".example>")
    assert smtp_server.wait_for(1)[0].message["Message-ID"] == result.provider_id


def test_it_raises_transient_while_smtp_is_down_and_delivers_after(smtp_server):
    smtp_server.stop()

    with pytest.raises(TransientSendError) as caught:
        send()
    assert caught.value.code == "connection"

    smtp_server.start()
    result = send()

    [received] = smtp_server.wait_for(1)
    assert received.message["Message-ID"] == result.provider_id


def test_it_times_out_a_stalled_mail_server(settings):
    # A listening socket that never greets: the kernel completes the TCP handshake, then
    # nothing. Without a timeout the client would wait forever.
    with socket.socket() as stalled:
        stalled.bind(("127.0.0.1", 0))
        stalled.listen()
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = stalled.getsockname()
        settings.EMAIL_TIMEOUT = 0.3
        started = time.monotonic()

        with pytest.raises(TransientSendError) as caught:
            send()

    assert time.monotonic() - started < 2
    assert caught.value.code == "timeout"


def test_it_raises_permanent_for_a_refused_recipient(smtp_server):
    smtp_server.refuse("gone@example.com")

    with pytest.raises(PermanentSendError) as caught:
        send(to="gone@example.com")

    assert caught.value.code == "550"
    assert "5.1.1" in caught.value.message
    assert smtp_server.received == []


def test_it_raises_transient_for_a_deferred_recipient(smtp_server):
    smtp_server.defer("busy@example.com")

    with pytest.raises(TransientSendError) as caught:
        send(to="busy@example.com")

    assert caught.value.code == "451"
    assert smtp_server.received == []
