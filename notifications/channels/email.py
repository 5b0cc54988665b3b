"""Email through Django's configured mail backend (SMTP in production, from EMAIL_URL)."""

from __future__ import annotations

import logging
import smtplib
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection, make_msgid
from django.utils.translation import to_locale

from .base import PermanentSendError, SendError, SendResult, TransientSendError

logger = logging.getLogger(__name__)

# Django's own default is no timeout at all: a mail server that accepts the connection
# and then stalls would hold the worker forever.
DEFAULT_EMAIL_TIMEOUT = 30
# The outbox's provider_id column holds at most this many characters.
PROVIDER_ID_MAX_LENGTH = 64


def send_email(*, to: str, subject: str, text: str, html: str, message_id: int, language: str) -> SendResult:
    """Send one email with a text and (when given) an HTML part. Its Message-ID, which we
    choose, is the provider id: bounces and replies quote it."""
    from_email = settings.DEFAULT_FROM_EMAIL
    provider_id = _message_id(from_email)
    connection = get_connection(timeout=getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_EMAIL_TIMEOUT)
    email = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=from_email,
        to=[to],
        headers={
            "Message-ID": provider_id,
            "Content-Language": _language_tag(language),
            "X-Outbox-Message": str(message_id),
        },
        connection=connection,
    )
    if html:
        email.attach_alternative(html, "text/html")
    try:
        email.send(fail_silently=False)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        error = _send_error(exc)
        logger.warning("Email (message %s) not sent: %s", message_id, error)
        raise error from exc
    logger.info("Email (message %s) accepted by the mail server as %s", message_id, provider_id)
    return SendResult(provider_id=provider_id, status="sent")


def _send_error(exc: Exception) -> SendError:
    """SMTP 5xx and addresses we cannot even format are final; everything else (4xx,
    refused or dropped connections, timeouts) may pass later."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per email, so its reply is the answer.
        code, reply = next(iter(exc.recipients.values()), (0, b""))
        return _from_reply(int(code), reply, "Recipient refused")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _from_reply(exc.smtp_code, exc.smtp_error, "Mail server refused the message")
    # smtplib reports a read timeout as SMTPServerDisconnected raised while handling it.
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return TransientSendError(f"Mail server timed out: {exc}", code="timeout")
    if isinstance(exc, ConnectionRefusedError):
        return TransientSendError(f"Mail server refused the connection: {exc}", code="connection")
    if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError):
        return TransientSendError(f"Mail server closed the connection: {exc}", code="disconnected")
    if isinstance(exc, smtplib.SMTPException | OSError):
        return TransientSendError(f"Mail server error: {exc}", code="smtp")
    # Django raises ValueError (BadHeaderError among them) for an address it cannot parse
    # or a header with a newline: sending the same message again fails the same way.
    return PermanentSendError(f"Invalid address or header: {exc}", code="invalid_message")


def _from_reply(code: int, reply: bytes | str, what: str) -> SendError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    message = f"{what}: {code} {text}"
    if 500 <= code < 600:
        return PermanentSendError(message, code=str(code))
    return TransientSendError(message, code=str(code))


def _language_tag(language: str) -> str:
    """Django's language code as a BCP 47 tag for Content-Language: zh-hans -> zh-Hans."""
    return to_locale(language).replace("_", "-")


def _message_id(from_email: str) -> str:
    """A Message-ID in our sender's domain that fits the outbox's provider_id column.

    make_msgid adds about 43 characters to the domain; a long domain loses its leading
    labels (mail.example.com -> example.com) rather than overflowing the column. Passing
    the domain also spares make_msgid's DNS lookup of this host's name.
    """
    labels = (parseaddr(from_email)[1].rpartition("@")[2] or "localhost").split(".")
    for start in range(len(labels)):
        msgid = make_msgid(domain=".".join(labels[start:]))
        if len(msgid) <= PROVIDER_ID_MAX_LENGTH:
            return msgid
    return make_msgid(domain="localhost")
