"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives.

It can refuse or defer chosen recipients, and stop and start again on the same port to
simulate a mail server that is down for a while.

    server = SmtpServer().start()
    server.refuse("nobody@example.com")      # 550 at RCPT
    server.stop(); ...; server.start()       # same port
    message = server.wait_for(1)[0].message  # an email.message.EmailMessage
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list) -> str:
        reply = self.owner._reply_for(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = BytesParser(policy=policy.default).parsebytes(raw)
        self.owner._store(ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), raw, message))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._received: list[ReceivedMessage] = []
        self._replies: dict[str, str] = {}
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        """Listen; after a stop, on the same port, so configured clients find it again."""
        if not self.port:
            self.port = _free_port(self.host)
        # server_hostname spares aiosmtpd a (possibly slow) lookup of this host's name.
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, server_hostname="localhost", ready_timeout=5
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- scripting ------------------------------------------------------------------------
    def refuse(self, address: str, *, code: int = 550, text: str = "5.1.1 Mailbox unavailable") -> None:
        """Answer RCPT TO for ``address`` with this reply (5xx: permanent)."""
        with self._lock:
            self._replies[address.lower()] = f"{code} {text}"

    def defer(self, address: str, *, code: int = 451, text: str = "4.3.0 Try again later") -> None:
        """Answer RCPT TO for ``address`` with a temporary failure (4xx)."""
        self.refuse(address, code=code, text=text)

    def accept(self, address: str) -> None:
        with self._lock:
            self._replies.pop(address.lower(), None)

    def _reply_for(self, address: str) -> str | None:
        with self._lock:
            return self._replies.get(address.lower())

    # --- what arrived ---------------------------------------------------------------------
    def _store(self, received: ReceivedMessage) -> None:
        with self._lock:
            self._received.append(received)

    @property
    def received(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._received)

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def wait_for(self, count: int, *, timeout: float = 10) -> list[ReceivedMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.received
            if len(received) >= count:
                return received
            time.sleep(0.02)
        raise AssertionError(f"Expected {count} emails within {timeout}s, got {len(self.received)}")

    # --- configuration ----------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Django settings that send mail here."""
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": self.host,
            "EMAIL_PORT": self.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_TIMEOUT": 5,
        }

    def env(self) -> dict[str, str]:
        """Environment for a worker subprocess (read through EMAIL_URL)."""
        return {"EMAIL_URL": f"smtp://{self.host}:{self.port}"}


def _free_port(host: str) -> int:
    # aiosmtpd connects to its own port to check it is up, so it needs a real port number
    # up front rather than 0.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
