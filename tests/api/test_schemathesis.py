"""Schemathesis fuzzes every operation of the OpenAPI schema in process (through the WSGI
app, in the test's database) and checks that no request gets a server error and every
answer matches the schema: its status code, content type and body.

A bounded number of examples per operation keeps the run well under two minutes.
"""

import datetime as dt

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks

from cases.models import Hold
from tests.api.conftest import make_case
from tests.factories import UserFactory, loan_with_schedule

EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def api_schema(db, django_settings_for_fuzzing):
    # Requests go through the real WSGI handler. Like Django's test client, keep the
    # database connection open between requests: the test's transaction lives on it.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def django_settings_for_fuzzing(settings):
    # The fuzzer sends hundreds of requests with one token: no throttling here
    # (test_throttling.py covers it).
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "100000/minute"}}


@pytest.fixture
def token(db):
    """A superuser, so the fuzzer reaches every operation past the role checks, with data
    for the small ids it tends to try (cases, holds and loans exist)."""
    user = UserFactory(username="fuzzer", is_superuser=True, is_staff=True)
    for n in range(3):
        case = make_case(assigned_to=user)
        Hold.objects.create(case=case, reason="dispute")
        loan_with_schedule([dt.date(2026, 1, 1)], external_id=f"L{n}")
    return Token.objects.create(user=user).key


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.mark.slow
def test_the_api_keeps_to_its_schema(api_schema, token):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 12
    failures = []
    calls = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case):
            response = case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
            calls.append(response.status_code)

        try:
            fuzz()
        except Exception as exc:  # every operation is fuzzed; all failures are reported together
            failures.append(f"{operation.label}: {exc}")

    assert not failures, "\n\n".join(failures)
    # The fuzzer got past validation somewhere: some answers were successes, not only 4xx.
    assert any(status < 300 for status in calls)
    assert any(status == 400 for status in calls)
