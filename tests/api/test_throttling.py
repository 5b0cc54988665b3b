"""Throttling per API token, counted in the real Redis cache."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.api.conftest import token_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/cases/"


@pytest.fixture
def three_per_minute(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "3/minute"}}


def test_a_token_over_its_rate_gets_429_with_retry_after(three_per_minute, supervisor):
    client = token_client(supervisor)

    assert [client.get(URL).status_code for _ in range(3)] == [200, 200, 200]
    response = client.get(URL)

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert "throttled" in response.json()["detail"].lower()


def test_each_token_has_its_own_budget(three_per_minute, supervisor):
    first = token_client(supervisor)
    for _ in range(3):
        first.get(URL)
    assert first.get(URL).status_code == 429

    # A new token (the old one revoked) starts afresh; so does another user's token.
    Token.objects.filter(user=supervisor).delete()
    assert token_client(supervisor).get(URL).status_code == 200
    assert token_client(UserFactory(username="sup-b", role="supervisor")).get(URL).status_code == 200


def test_the_counts_live_in_the_shared_cache(three_per_minute, supervisor):
    """Two client objects (as two web processes would be) share one budget through Redis."""
    token = Token.objects.create(user=supervisor)
    clients = [APIClient(), APIClient()]
    for c in clients:
        c.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    statuses = [clients[n % 2].get(URL).status_code for n in range(4)]

    assert statuses == [200, 200, 200, 429]
