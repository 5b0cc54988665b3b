"""Logging pieces named in settings.LOGGING: the phone-number mask, the JSON formatter, and
gunicorn's access log without the health checks.

Logs leave the portal (a log shipper, a support ticket), so borrowers' phone numbers must
not be in them: every record passes through ``MaskPhoneNumbers`` on its way to a handler,
whichever logger wrote it (ours, Celery's, a library's exception text).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# E.164: "+", a country code not starting with 0, at most 15 digits in all. Also numbers
# written with the usual separators ("+86 138-1234-5678"). Seven digits at least, so a
# "+1" in an arithmetic message is left alone.
E164 = re.compile(r"\+[1-9](?:[ \-.]?\d){6,14}(?!\d)")

# The attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def mask_phone_numbers(text: str) -> str:
    """'+8613812345678' -> '+*********78': keep the last two digits, enough to tell two apart."""

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return "+" + "*" * (len(digits) - 2) + digits[-2:]

    return E164.sub(mask, text)


class MaskPhoneNumbers(logging.Filter):
    """Rewrites the record in place: message (arguments merged in), exception text, stack, extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as logging does
            return True
        record.msg, record.args = mask_phone_numbers(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_phone_numbers(record.exc_text)
            # Formatters prefer exc_info to exc_text (the JSON one does): keep only the masked text.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = mask_phone_numbers(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_ATTRIBUTES:
                setattr(record, name, _mask_value(value))
        return True


def _mask_value(value: Any) -> Any:
    """Strings masked, containers walked: Celery logs a task's arguments in an extra dict."""
    if isinstance(value, str):
        return mask_phone_numbers(value)
    if isinstance(value, dict):
        return {key: _mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask_value(item) for item in value)
    return value


class JsonFormatter(_JsonFormatter):
    """python-json-logger with the fields a log search needs, under stable names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)


try:  # gunicorn runs the web service; the worker and the tests may not have it loaded.
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover - gunicorn is in requirements.txt
    _GunicornLogger = object


class GunicornLogger(_GunicornLogger):
    """gunicorn's logger (``--logger-class``) minus access lines for successful health checks,
    which the container runtime sends every few seconds and which would drown the real traffic."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if environ.get("PATH_INFO") == "/healthz" and str(getattr(resp, "status", "")).startswith("200"):
            return
        super().access(resp, req, environ, request_time)
