"""Django admin for legal's models: the changelists and change pages open for a superuser,
and placements and matters cannot be added or deleted there (services do that, with events)."""

import pytest
from django.urls import reverse

from legal.models import AgencyMember, LegalMatter, Placement
from tests.factories import UserFactory

from .conftest import make_agency, make_agency_user, third_party_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_every_legal_model_has_a_working_admin(admin_client, supervisor):
    from cases.services.approvals import case_approve_escalation, case_request_escalation

    agency = make_agency("A")
    make_agency_user("agent1", agency)
    case = third_party_case()
    case_request_escalation(case_id=case.pk, stage_code="litigation", requested_by=UserFactory(username="req"))
    case_approve_escalation(case_id=case.pk, approver=supervisor)
    objects = {
        "agency": agency,
        "agencymember": AgencyMember.objects.get(),
        "placement": Placement.objects.get(),
        "legalmatter": LegalMatter.objects.get(),
    }
    for model, obj in objects.items():
        assert admin_client.get(reverse(f"admin:legal_{model}_changelist")).status_code == 200, model
        assert admin_client.get(reverse(f"admin:legal_{model}_change", args=[obj.pk])).status_code == 200, model
    for model in ("placement", "legalmatter"):
        assert admin_client.get(reverse(f"admin:legal_{model}_add")).status_code == 403
        assert admin_client.get(reverse(f"admin:legal_{model}_delete", args=[objects[model].pk])).status_code == 403
