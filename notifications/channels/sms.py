"""SMS backends, chosen by ``settings.SMS_BACKEND``: console (development), locmem (tests)
and twilio (production, and tests against a loopback Twilio).

Every backend maps its provider's failures to the errors in ``base`` so that dispatch can
decide between retrying and giving up without knowing which provider it talked to.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from .base import PermanentSendError, RecipientOptedOut, SendError, SendResult, TransientSendError

logger = logging.getLogger(__name__)

STATUS_CALLBACK_PATH = "/webhooks/twilio/status/"
# Long enough for Twilio on a bad day, short enough that a hung connection frees the
# worker well before Celery's visibility timeout hands the task to someone else.
DEFAULT_TWILIO_HTTP_TIMEOUT = 10.0
TWILIO_OPTED_OUT = 21610
TWILIO_TOO_MANY_REQUESTS = 20429


# How far before our claim time a provider's record may be dated (clocks differ).
CLOCK_SKEW = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class SentMessage:
    """A message as the provider lists it."""

    provider_id: str
    status: str
    created_at: dt.datetime | None


class SmsBackend(Protocol):
    def send(self, *, to: str, body: str, message_id: int) -> SendResult: ...

    def fetch_status(self, provider_id: str) -> str | None: ...

    def find_sent(self, *, to: str, since: dt.datetime) -> list[SentMessage] | None:
        """The messages the provider accepted for ``to`` since about ``since``, newest
        first; None when this backend cannot tell (then nobody may assume nothing went)."""
        ...


def mask_phone(number: str) -> str:
    """+8613812345678 -> +86138****5678: logs can tell numbers apart without holding them."""
    if len(number) <= 4:
        return "****"
    if len(number) <= 10:
        return "****" + number[-4:]
    return number[:6] + "****" + number[-4:]


class ConsoleSmsBackend:
    """Development: the message goes to the log instead of a phone."""

    def send(self, *, to: str, body: str, message_id: int) -> SendResult:
        logger.info("SMS to %s (message %s): %s", mask_phone(to), message_id, body)
        return SendResult(provider_id=f"console-{message_id}", status="sent")

    def fetch_status(self, provider_id: str) -> str | None:
        # Logging is the whole delivery, so anything this backend accepted was sent.
        return "sent" if provider_id.startswith("console-") else None

    def find_sent(self, *, to: str, since: dt.datetime) -> list[SentMessage] | None:
        return None  # the log is not searchable


# Messages "sent" by LocmemSmsBackend, oldest first; tests read and clear it.
outbox: list[dict[str, Any]] = []


class LocmemSmsBackend:
    """Tests: keeps messages in ``outbox``. A test may change an entry's ``status`` to make
    ``fetch_status`` report something else."""

    def send(self, *, to: str, body: str, message_id: int) -> SendResult:
        provider_id = f"locmem-{message_id}"
        outbox.append({"to": to, "body": body, "message_id": message_id, "provider_id": provider_id, "status": "sent"})
        return SendResult(provider_id=provider_id, status="sent")

    def fetch_status(self, provider_id: str) -> str | None:
        for entry in reversed(outbox):
            if entry["provider_id"] == provider_id:
                return entry["status"]
        return None

    def find_sent(self, *, to: str, since: dt.datetime) -> list[SentMessage] | None:
        return [
            SentMessage(entry["provider_id"], entry["status"], None) for entry in reversed(outbox) if entry["to"] == to
        ]


# Response headers of the last Twilio call made by this thread. TwilioRestException keeps
# only the status and the JSON body, but Retry-After is a header.
_last_response = threading.local()


class _HeaderKeepingHttpClient(TwilioHttpClient):
    def request(self, *args: Any, **kwargs: Any) -> Response:
        _last_response.headers = {}
        response = super().request(*args, **kwargs)
        _last_response.headers = response.headers or {}
        return response


@functools.lru_cache(maxsize=4)
def _twilio_client(account_sid: str, auth_token: str, api_base_url: str, timeout: float) -> Client:
    """One client (and so one pool of keep-alive connections) per process and configuration:
    dispatch sends thousands of messages, and a TLS handshake per message is wasted time."""
    client = Client(account_sid, auth_token, http_client=_HeaderKeepingHttpClient(timeout=timeout))
    if api_base_url:
        client.api.base_url = api_base_url.rstrip("/")
        host = urlsplit(api_base_url).hostname or ""
        if not host.endswith(".twilio.com"):
            # TWILIO_EDGE / TWILIO_REGION in the environment rewrite the host name as if it
            # were Twilio's; a loopback or staging URL must be used as given.
            client.edge = client.region = None
    return client


class TwilioSmsBackend:
    """The real twilio client, against ``api_base_url`` (api.twilio.com, or a stub)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str = "",
        messaging_service_sid: str = "",
        api_base_url: str = "",
        status_callback: str = "",
        timeout: float = DEFAULT_TWILIO_HTTP_TIMEOUT,
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ImproperlyConfigured("TwilioSmsBackend needs a from number or a messaging service sid.")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self.client = _twilio_client(account_sid, auth_token, api_base_url, float(timeout))

    @classmethod
    def from_settings(cls) -> TwilioSmsBackend:
        missing = [name for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not getattr(settings, name, "")]
        if not (getattr(settings, "TWILIO_FROM_NUMBER", "") or getattr(settings, "TWILIO_MESSAGING_SERVICE_SID", "")):
            missing.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ImproperlyConfigured(f"SMS_BACKEND is 'twilio' but {', '.join(missing)} {verb} not set.")
        return cls(
            account_sid=settings.TWILIO_ACCOUNT_SID,
            auth_token=settings.TWILIO_AUTH_TOKEN,
            from_number=getattr(settings, "TWILIO_FROM_NUMBER", ""),
            messaging_service_sid=getattr(settings, "TWILIO_MESSAGING_SERVICE_SID", ""),
            api_base_url=getattr(settings, "TWILIO_API_BASE_URL", ""),
            status_callback=settings.PUBLIC_BASE_URL.rstrip("/") + STATUS_CALLBACK_PATH,
            timeout=getattr(settings, "TWILIO_HTTP_TIMEOUT", DEFAULT_TWILIO_HTTP_TIMEOUT),
        )

    def send(self, *, to: str, body: str, message_id: int) -> SendResult:
        # A messaging service picks the sender from its pool; it wins when both are set.
        sender = (
            {"messaging_service_sid": self.messaging_service_sid}
            if self.messaging_service_sid
            else {"from_": self.from_number}
        )
        try:
            message = self.client.messages.create(to=to, body=body, status_callback=self.status_callback, **sender)
        except (TwilioException, requests.RequestException, ValueError) as exc:
            error = _send_error(exc)
            logger.warning("SMS to %s (message %s) not sent: %s", mask_phone(to), message_id, error)
            raise error from exc
        # DEBUG: the outbox row keeps the sid; a line per message at INFO would flood the log.
        logger.debug("SMS to %s (message %s) accepted by Twilio as %s", mask_phone(to), message_id, message.sid)
        return SendResult(provider_id=message.sid, status=str(message.status or "queued"))

    def fetch_status(self, provider_id: str) -> str | None:
        try:
            message = self.client.messages(provider_id).fetch()
        except (TwilioException, requests.RequestException, ValueError) as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise _send_error(exc) from exc
        return str(message.status) if message.status else None

    def find_sent(self, *, to: str, since: dt.datetime) -> list[SentMessage] | None:
        """Twilio's list of messages to ``to``, newest first, created since ``since`` (less
        the clock skew). One page is enough: a borrower gets a few SMS a week at most."""
        try:
            listed = self.client.messages.list(to=to, limit=50)
        except (TwilioException, requests.RequestException, ValueError) as exc:
            raise _send_error(exc) from exc
        earliest = since - CLOCK_SKEW
        return [
            SentMessage(str(m.sid), str(m.status or "queued"), m.date_created)
            for m in listed
            if m.direction in (None, "outbound-api") and (m.date_created is None or m.date_created >= earliest)
        ]


def _send_error(exc: Exception) -> SendError:
    """Map a failed Twilio call to retry-later or give-up."""
    if isinstance(exc, requests.ConnectTimeout):
        return TransientSendError(f"Twilio did not accept a connection in time: {exc}", code="timeout")
    if isinstance(exc, requests.Timeout):
        # The request went out; Twilio may have taken the message before we stopped waiting.
        return TransientSendError(f"Twilio did not answer in time: {exc}", code="timeout", outcome_unknown=True)
    if isinstance(exc, requests.ConnectionError):
        never_connected = _never_connected(exc)
        return TransientSendError(
            f"Could not reach Twilio: {exc}", code="connection", outcome_unknown=not never_connected
        )
    if isinstance(exc, requests.RequestException):
        return TransientSendError(f"HTTP error talking to Twilio: {exc}", code="http")
    if isinstance(exc, ValueError):
        # Twilio answered 2xx with a body we cannot read: the message was probably created.
        return TransientSendError(f"Unreadable answer from Twilio: {exc}", code="bad_response", outcome_unknown=True)

    status = int(getattr(exc, "status", 0) or 0)
    twilio_code = getattr(exc, "code", None) or status
    text = getattr(exc, "msg", "") or getattr(exc, "detail", "") or getattr(exc, "title", "") or str(exc)
    code = str(twilio_code)
    if twilio_code == TWILIO_OPTED_OUT:
        return RecipientOptedOut(text, code=code)
    if status == 429 or twilio_code == TWILIO_TOO_MANY_REQUESTS or status >= 500 or status == 0:
        return TransientSendError(text, code=code, retry_after=_retry_after(getattr(_last_response, "headers", {})))
    return PermanentSendError(text, code=code)


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the connection itself failed (refused, DNS), so nothing was sent."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds; it may be a number of seconds or an HTTP date."""
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - timezone.now()).total_seconds())


def get_sms_backend() -> SmsBackend:
    """The backend named by settings.SMS_BACKEND. Cheap to call per message: the Twilio
    client behind it is created once per process."""
    name = settings.SMS_BACKEND
    if name == "console":
        return ConsoleSmsBackend()
    if name == "locmem":
        return LocmemSmsBackend()
    if name == "twilio":
        return TwilioSmsBackend.from_settings()
    raise ImproperlyConfigured(f"SMS_BACKEND must be 'console', 'locmem' or 'twilio', not {name!r}.")
