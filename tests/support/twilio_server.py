"""A loopback Twilio: a real HTTP server that speaks the Messages API wire format.

The real twilio client talks to it over HTTP (``TWILIO_API_BASE_URL``), so tests exercise
the client's request building, Basic auth, JSON parsing and error mapping exactly as in
production. Tests script its behaviour (failures, rejected numbers, latency) and make it
send signed status callbacks the way Twilio does.

    server = TwilioServer().start()
    server.fail_next(2, status=429)          # the next two API requests get 429 / 20429
    server.reject("+15005550001", code=21211)
    server.send_status_callback(sid, "delivered")
    server.stop()
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
MESSAGE_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")
# What Twilio answers when a test does not say otherwise.
DEFAULT_ERROR_CODES = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}
# Characters of the GSM 03.38 basic alphabet; anything else makes Twilio send UCS-2.
GSM_CHARS = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def segments(body: str) -> int:
    """How many SMS segments Twilio bills for this body."""
    single, multi = (160, 153) if set(body) <= GSM_CHARS else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


def twilio_error(status: int, code: int | None = None, message: str | None = None) -> dict[str, Any]:
    code = code or DEFAULT_ERROR_CODES.get(status, status)
    return {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, whatever it answered."""

    method: str
    path: str
    auth: tuple[str, str] | None
    form: dict[str, str]
    status: int
    sid: str | None = None

    @property
    def to(self) -> str | None:
        return self.form.get("To")

    @property
    def body(self) -> str | None:
        return self.form.get("Body")

    @property
    def from_(self) -> str | None:
        return self.form.get("From")

    @property
    def messaging_service_sid(self) -> str | None:
        return self.form.get("MessagingServiceSid")

    @property
    def status_callback(self) -> str | None:
        return self.form.get("StatusCallback")


@dataclass(frozen=True)
class Failure:
    status: int
    code: int
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class CallbackRecord:
    """A status callback the server posted (or tried to)."""

    url: str
    params: dict[str, str]
    signature: str
    response_status: int | None
    error: str = ""


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_callbacks: dict[str, str] = field(default_factory=dict)
    failures: deque[Failure] = field(default_factory=deque)
    rejections: dict[str, Failure] = field(default_factory=dict)
    final_outcomes: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    callbacks: list[CallbackRecord] = field(default_factory=list)


class TwilioServer:
    """The loopback Twilio. Thread-safe: the HTTP server answers each request in a thread."""

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        from_number: str = "+15005550006",
        auto_callbacks: bool = False,
        callback_delay: float = 0.05,
        latency: float = 0.0,
    ) -> None:
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.from_number = from_number
        # Send "sent" then "delivered" callbacks after each accepted message, like Twilio.
        self.auto_callbacks = auto_callbacks
        self.callback_delay = callback_delay
        # Seconds to wait before answering any API request (a slow or hung provider).
        self.latency = latency
        self.host = "127.0.0.1"
        self.port = 0
        self._state = _State()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._callback_threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> TwilioServer:
        """Listen (again on the same port after a stop, so clients find it back)."""
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="twilio-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: new connections are refused until start() is called again."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for thread in self._callback_threads:
            thread.join(timeout=5)
        self._callback_threads.clear()

    def __enter__(self) -> TwilioServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def settings(self) -> dict[str, str]:
        """Django settings that point the twilio backend here."""
        return {
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM_NUMBER": self.from_number,
            "TWILIO_MESSAGING_SERVICE_SID": "",
            "TWILIO_API_BASE_URL": self.url,
        }

    def env(self) -> dict[str, str]:
        """The same settings as environment variables, for a worker subprocess."""
        return dict(self.settings())

    # --- scripting ------------------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        code: int | None = None,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """The next ``n`` authenticated API requests (create or fetch) fail with this error."""
        code = code or DEFAULT_ERROR_CODES.get(status, status)
        failure = Failure(status, code, message or ERROR_MESSAGES.get(code, "Error"), retry_after)
        with self._state.lock:
            self._state.failures.extend([failure] * n)

    def reject(self, number: str, *, code: int = 21211, status: int = 400, message: str | None = None) -> None:
        """Every message to ``number`` fails with this error until ``unreject``."""
        text = message or f"{ERROR_MESSAGES.get(code, 'Error')}: {number}"
        with self._state.lock:
            self._state.rejections[number] = Failure(status, code, text)

    def unreject(self, number: str) -> None:
        with self._state.lock:
            self._state.rejections.pop(number, None)

    def deliver_as(self, number: str, status: str = "undelivered", *, error_code: int | None = 30003) -> None:
        """Automatic callbacks for ``number`` end in ``status`` instead of "delivered"."""
        with self._state.lock:
            self._state.final_outcomes[number] = (status, error_code)

    def set_status(self, sid: str, status: str, *, error_code: int | None = None) -> dict[str, Any]:
        """Change a message's current status (what a fetch returns) without a callback."""
        now = format_datetime(dt.datetime.now(dt.UTC))
        with self._state.lock:
            message = self._state.messages[sid]
            message["status"] = status
            message["date_updated"] = now
            if status in ("sent", "delivered") and message["date_sent"] is None:
                message["date_sent"] = now
            if error_code is not None:
                message["error_code"] = error_code
                message["error_message"] = None
            return dict(message)

    # --- what happened ------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def created(self) -> list[RecordedRequest]:
        """The requests that created a message."""
        return [r for r in self.requests if r.method == "POST" and r.status == 201]

    @property
    def callbacks(self) -> list[CallbackRecord]:
        with self._state.lock:
            return list(self._state.callbacks)

    def message(self, sid: str) -> dict[str, Any]:
        with self._state.lock:
            return dict(self._state.messages[sid])

    def wait_for_callbacks(self, count: int, *, timeout: float = 10) -> list[CallbackRecord]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            callbacks = self.callbacks
            if len(callbacks) >= count:
                return callbacks
            time.sleep(0.02)
        raise AssertionError(f"Expected {count} status callbacks within {timeout}s, got {len(self.callbacks)}")

    # --- status callbacks ---------------------------------------------------------------
    def send_status_callback(
        self, sid: str, status: str, *, url: str | None = None, error_code: int | None = None
    ) -> int:
        """Set the message's status and POST a signed callback, as Twilio does, to ``url``
        or the message's StatusCallback. Returns the receiver's HTTP status."""
        if status in ("failed", "undelivered") and error_code is None:
            error_code = 30003  # Unreachable destination handset
        message = self.set_status(sid, status, error_code=error_code)
        with self._state.lock:
            url = url or self._state.status_callbacks.get(sid)
        if not url:
            raise ValueError(f"Message {sid} has no StatusCallback and no url was given.")
        params = {
            "ApiVersion": API_VERSION,
            "AccountSid": self.account_sid,
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message["to"],
            "From": message["from"] or "",
        }
        if message.get("messaging_service_sid"):
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        try:
            response = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
        except requests.RequestException as exc:
            with self._state.lock:
                self._state.callbacks.append(CallbackRecord(url, params, signature, None, str(exc)))
            raise
        with self._state.lock:
            self._state.callbacks.append(CallbackRecord(url, params, signature, response.status_code))
        return response.status_code

    def _schedule_callbacks(self, sid: str, to: str) -> None:
        with self._state.lock:
            final, error_code = self._state.final_outcomes.get(to, ("delivered", None))

        def run() -> None:
            for status, code in (("sent", None), (final, error_code)):
                time.sleep(self.callback_delay)
                try:
                    self.send_status_callback(sid, status, error_code=code)
                except requests.RequestException:
                    return  # Recorded in callbacks; Twilio gives up too.

        thread = threading.Thread(target=run, name=f"twilio-callbacks-{sid}", daemon=True)
        self._callback_threads.append(thread)
        thread.start()

    # --- request handling ---------------------------------------------------------------
    def _authenticated(self, auth: tuple[str, str] | None) -> bool:
        return auth is not None and secrets.compare_digest(
            f"{auth[0]}:{auth[1]}", f"{self.account_sid}:{self.auth_token}"
        )

    def _handle(self, method: str, path: str, auth: tuple[str, str] | None, form: dict[str, str]) -> tuple:
        """Returns (HTTP status, JSON body, extra headers, message sid)."""
        if self.latency:
            time.sleep(self.latency)
        create, fetch = MESSAGES_PATH.match(path), MESSAGE_PATH.match(path)
        match = create if method == "POST" else (fetch or create) if method == "GET" else None
        if not self._authenticated(auth):
            return 401, twilio_error(401), {"WWW-Authenticate": 'Basic realm="Twilio API"'}, None
        if match is None or match["account"] != self.account_sid:
            return 404, twilio_error(404, message=f"The requested resource {path} was not found"), {}, None
        with self._state.lock:
            failure = self._state.failures.popleft() if self._state.failures else None
        if failure is not None:
            headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
            return failure.status, twilio_error(failure.status, failure.code, failure.message), headers, None
        if method == "GET" and match is create:
            return self._list(form)
        if match is fetch:
            with self._state.lock:
                message = self._state.messages.get(match["sid"])
            if message is None:
                return 404, twilio_error(404, message=f"The requested resource {path} was not found"), {}, None
            return 200, dict(message), {}, message["sid"]
        return self._create(form)

    def _create(self, form: dict[str, str]) -> tuple:
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From", ""), form.get("MessagingServiceSid", "")
        if not to:
            return 400, twilio_error(400, 21604), {}, None
        if not (sender or service):
            return 400, twilio_error(400, 21603), {}, None
        if not body:
            return 400, twilio_error(400, 21602), {}, None
        with self._state.lock:
            rejection = self._state.rejections.get(to)
        if rejection is not None:
            return rejection.status, twilio_error(rejection.status, rejection.code, rejection.message), {}, None
        sid = new_sid("SM")
        now = format_datetime(dt.datetime.now(dt.UTC))
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        message = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            # A messaging service picks a sender from its pool; ours has one number.
            "from": sender or self.from_number,
            "messaging_service_sid": service or None,
            "num_media": "0",
            "num_segments": str(segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
            "to": to,
            "uri": f"{base}.json",
        }
        with self._state.lock:
            self._state.messages[sid] = message
            if form.get("StatusCallback"):
                self._state.status_callbacks[sid] = form["StatusCallback"]
        return 201, dict(message), {}, sid

    def _list(self, query: dict[str, str]) -> tuple:
        """GET Messages.json: one page, newest first, filtered by To and From as Twilio does."""
        with self._state.lock:
            messages = [dict(m) for m in reversed(self._state.messages.values())]
        for name, key in (("To", "to"), ("From", "from")):
            if query.get(name):
                messages = [m for m in messages if m[key] == query[name]]
        size = int(query.get("PageSize") or 50)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        page = {"messages": messages[:size], "page": 0, "page_size": size, "start": 0, "end": len(messages[:size])}
        page |= {"uri": uri, "first_page_uri": uri, "next_page_uri": None, "previous_page_uri": None}
        return 200, page, {}, None

    def _record(self, request: RecordedRequest) -> None:
        with self._state.lock:
            self._state.requests.append(request)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type, stub: TwilioServer) -> None:
        self.stub = stub
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    # HTTP/1.0: one request per connection, so a stopped server is really gone for
    # clients instead of still answering on a pooled keep-alive connection.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        # A GET's parameters (a list's filters) are in the query string.
        raw = self.rfile.read(length).decode("utf-8") if length else urlsplit(self.path).query
        form = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
        auth = _basic_auth(self.headers.get("Authorization", ""))
        path = urlsplit(self.path).path
        status, payload, headers, sid = stub._handle(method, path, auth, form)
        stub._record(RecordedRequest(method=method, path=path, auth=auth, form=form, status=status, sid=sid))
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if status == 201 and stub.auto_callbacks and sid:
            # After the answer is written, as with Twilio: the client learns the sid first
            # (usually; a receipt racing ahead of it is possible in production too).
            stub._schedule_callbacks(sid, form.get("To", ""))

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Quiet: the test output is for assertions.


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class WebhookRecorder:
    """A plain HTTP server that records the POSTs it receives (to inspect callbacks
    without the portal). Answers 204."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                params = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
                with recorder._lock:
                    recorder.received.append({"path": self.path, "headers": dict(self.headers), "params": params})
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> WebhookRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def wait_for(self, count: int, *, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"Expected {count} webhook calls within {timeout}s, got {len(self.received)}")
