"""What every channel returns and raises.

Dispatch only needs three answers from a provider: it took the message (``SendResult``),
try again later (``TransientSendError``) or never (``PermanentSendError``). Providers' own
error types stay inside the channel modules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message.

    ``provider_id`` is the provider's reference (Twilio's ``SM...`` sid, the email's
    Message-ID); status callbacks and reconciliation find the message by it. ``status`` is
    what the provider reported at acceptance ("queued" for Twilio, "sent" for SMTP).
    """

    provider_id: str
    status: str


class SendError(Exception):
    """The provider did not take the message. ``code`` is short enough for the outbox's
    ``error_code`` column (16 characters): a Twilio error code, an SMTP reply code, or a
    word such as "timeout" for network failures."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = str(code)[:16]
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.code else self.message


class TransientSendError(SendError):
    """Worth retrying later: 5xx, rate limits, timeouts, refused connections, SMTP 4xx.

    ``retry_after`` carries the provider's Retry-After (seconds) when it sent one.
    ``outcome_unknown`` is True when the request may have reached the provider before it
    failed (a read timeout, a dropped connection after sending): the message may already
    be on its way, so a retry risks a duplicate.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class PermanentSendError(SendError):
    """Retrying cannot help: an invalid number, a recipient the mail server refuses."""


class RecipientOptedOut(PermanentSendError):
    """Twilio error 21610: the number replied STOP; the carrier blocks our messages to it."""
