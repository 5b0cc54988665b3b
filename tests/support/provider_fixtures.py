"""Fixtures for the loopback providers, shared by the notification and fault tests.

Each starts its server, points Django's settings at it (pytest-django's ``settings``
fixture puts them back afterwards) and stops it after the test. Import them into a
conftest.py to use them there.
"""

from collections.abc import Iterator

import pytest

from tests.support.smtp_server import SmtpServer
from tests.support.twilio_server import TwilioServer


@pytest.fixture
def twilio_server(settings) -> Iterator[TwilioServer]:
    server = TwilioServer().start()
    for name, value in server.settings().items():
        setattr(settings, name, value)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_server(settings) -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    for name, value in server.settings().items():
        setattr(settings, name, value)
    try:
        yield server
    finally:
        server.stop()
