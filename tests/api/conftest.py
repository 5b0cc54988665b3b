"""The cast of the API tests and clients that authenticate with real DRF tokens.

Throttling counts requests in the real Redis cache; each test gets a key prefix of its
own so counts never leak between tests or between pytest processes sharing the server.
"""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import Case, Stage
from tests.factories import UserFactory, loan_with_schedule

DUE = dt.date(2026, 1, 5)


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    caches = {alias: dict(config) for alias, config in settings.CACHES.items()}
    for config in caches.values():
        config["KEY_PREFIX"] = f"test-api-{uuid.uuid4().hex}"
    settings.CACHES = caches


def token_client(user) -> APIClient:
    client = APIClient()
    token, _created = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    client.user = user
    return client


@pytest.fixture
def collector():
    return UserFactory(username="collector1", role="collector")


@pytest.fixture
def other_collector():
    return UserFactory(username="collector2", role="collector")


@pytest.fixture
def supervisor():
    return UserFactory(username="supervisor1", role="supervisor")


@pytest.fixture
def integration():
    return UserFactory(username="lender-system", role="integration")


@pytest.fixture
def outsider():
    """Logged in, but with no role at all."""
    return UserFactory(username="outsider")


@pytest.fixture
def api(collector):
    return token_client(collector)


@pytest.fixture
def as_user():
    return token_client


def make_case(*, assigned_to=None, stage: str = "phone", dpd: int = 10, outstanding: str = "1000.00", **kwargs) -> Case:
    """A live case on a loan with one overdue installment of ``outstanding``."""
    loan = loan_with_schedule([DUE], amount=Decimal(outstanding))
    return Case.objects.create(
        loan=loan,
        stage=Stage.objects.get(code=stage),
        days_past_due=dpd,
        outstanding=Decimal(outstanding),
        overdue_amount=Decimal(outstanding),
        assigned_to=assigned_to,
        **kwargs,
    )


@pytest.fixture
def case_of(collector):
    return make_case(assigned_to=collector)


@pytest.fixture
def case_of_other(other_collector):
    return make_case(assigned_to=other_collector)
