"""The OpenAPI schema, the offline docs page and DRF's token command."""

import re

import pytest
import yaml
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CONTRACT_PATHS = {
    "/api/v1/loans/": {"post"},
    "/api/v1/loans/{external_id}/": {"get"},
    "/api/v1/payments/": {"post"},
    "/api/v1/cases/": {"get"},
    "/api/v1/cases/{id}/": {"get"},
    "/api/v1/cases/{id}/events/": {"get"},
    "/api/v1/cases/{id}/promises/": {"post"},
    "/api/v1/cases/{id}/holds/": {"post"},
    "/api/v1/cases/{id}/holds/{hold_id}/release/": {"post"},
    "/api/v1/cases/{id}/contacts/": {"post"},
    "/api/v1/cases/{id}/approve-escalation/": {"post"},
    "/api/v1/notifications/": {"get"},
}


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_the_schema_is_openapi_3_with_every_contract_endpoint(schema):
    assert schema["openapi"].startswith("3.")
    paths = {path: set(ops) - {"parameters"} for path, ops in schema["paths"].items()}
    assert paths == CONTRACT_PATHS


def test_every_post_documents_the_idempotency_key_and_has_an_example(schema):
    for path, operations in schema["paths"].items():
        if "post" not in operations:
            continue
        post = operations["post"]
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"]), path
        assert {"400", "409"} <= set(post["responses"]), path
    loan_body = schema["paths"]["/api/v1/loans/"]["post"]["requestBody"]["content"]["application/json"]
    assert loan_body["examples"]["AThree-monthLoan"]["value"]["borrower"]["phone"] == "+8613812345678"


def test_the_case_list_documents_its_filters(schema):
    names = {p["name"] for p in schema["paths"]["/api/v1/cases/"]["get"]["parameters"]}
    assert {"stage", "status", "assigned_to", "min_dpd", "max_dpd", "loan", "page", "page_size"} <= names


def test_the_docs_page_loads_swagger_ui_from_the_portal_itself(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-dist/swagger-ui-bundle.js" in s for s in sources), sources
    # Nothing from another host: the docs work without internet.
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
    for source in sources:
        if source.startswith("/static/"):
            asset = client.get(source)
            assert asset.status_code == 200, source


def test_drf_create_token_makes_a_working_token(client, capsys):
    user = UserFactory(username="feed", role="integration")

    call_command("drf_create_token", "feed")

    token = Token.objects.get(user=user)
    assert token.key in capsys.readouterr().out
    response = client.get("/api/v1/cases/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert client.get("/api/v1/cases/", HTTP_AUTHORIZATION="Token wrong").status_code == 401
