"""Loopback providers for notification tests: a Twilio stub and a real SMTP server.

Each fixture starts its server, points Django's settings at it (pytest-django's
``settings`` fixture puts them back afterwards) and stops it after the test. For worker
subprocesses, pass ``server.env()`` to them: they read the same settings from there.
"""

from collections.abc import Iterator

import pytest

from notifications.channels import sms
from tests.support.provider_fixtures import smtp_server, twilio_server  # noqa: F401 (fixtures)
from tests.support.twilio_server import WebhookRecorder


@pytest.fixture
def webhook_recorder(settings) -> Iterator[WebhookRecorder]:
    """Receives status callbacks in place of the portal: PUBLIC_BASE_URL points at it."""
    recorder = WebhookRecorder().start()
    settings.PUBLIC_BASE_URL = recorder.url
    try:
        yield recorder
    finally:
        recorder.stop()


@pytest.fixture
def sms_outbox(settings) -> Iterator[list[dict]]:
    """The locmem SMS backend's outbox, empty at the start and the end of the test."""
    settings.SMS_BACKEND = "locmem"
    sms.outbox.clear()
    try:
        yield sms.outbox
    finally:
        sms.outbox.clear()
