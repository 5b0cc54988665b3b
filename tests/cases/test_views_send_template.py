"""Sending an approved template from the case page (notifications' panel and view)."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from cases.models import CaseEvent, EventKind
from cases.services import sweep_run
from notifications.models import MessageTemplate, OutboundMessage
from tests.factories import BorrowerFactory, UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db
AS_OF = dt.date(2026, 6, 2)
NOON_IN_SHANGHAI = dt.datetime(2026, 6, 2, 4, 0, tzinfo=dt.UTC)
NIGHT_IN_SHANGHAI = dt.datetime(2026, 6, 2, 14, 0, tzinfo=dt.UTC)


@pytest.fixture
def collector():
    return UserFactory(username="collector-a", role="collector")


@pytest.fixture
def case(collector):
    loan = loan_with_schedule([AS_OF - dt.timedelta(days=10)], borrower=BorrowerFactory(name="赵敏"))
    with time_machine.travel(dt.datetime(2026, 6, 2, 3, 0, tzinfo=dt.UTC), tick=False):
        sweep_run(as_of=AS_OF)
    case = loan.cases.get()
    case.assigned_to = collector
    case.save(update_fields=["assigned_to"])
    return case


@pytest.fixture
def template():
    return MessageTemplate.objects.get(name="phone-sms-zh-hans")


def send_url(case):
    return reverse("case-send-template", kwargs={"case_id": case.pk})


def test_the_case_page_offers_the_approved_templates_in_the_borrowers_language(client, collector, case, template):
    client.force_login(collector)

    with time_machine.travel(NOON_IN_SHANGHAI, tick=False):
        html = client.get(reverse("case-detail", kwargs={"case_id": case.pk})).content.decode()

    assert "Send an approved template" in html
    assert f'value="{template.pk}"' in html
    assert "phone-sms-en" not in html  # the borrower reads zh-hans


def test_the_preview_shows_the_text_and_that_the_policy_lets_it_go(client, collector, case, template):
    client.force_login(collector)

    with time_machine.travel(NOON_IN_SHANGHAI, tick=False):
        response = client.get(send_url(case), {"template": template.pk}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "赵敏" in html
    assert "The policy lets it go now." in html
    assert not OutboundMessage.objects.filter(action="manual").exists()


def test_at_night_the_preview_says_when_it_would_go(client, collector, case, template):
    client.force_login(collector)

    with time_machine.travel(NIGHT_IN_SHANGHAI, tick=False):
        html = client.get(send_url(case), {"template": template.pk}).content.decode()

    assert "It would wait until 2026-06-03 08:00" in html
    assert "Outside the permitted hours" in html


def test_sending_queues_the_message_and_records_it_on_the_timeline(client, collector, case, template):
    client.force_login(collector)

    with time_machine.travel(NOON_IN_SHANGHAI, tick=False):
        response = client.post(send_url(case), {"template": template.pk})

    assert response.status_code == 302
    assert response["Location"] == reverse("case-detail", kwargs={"case_id": case.pk})
    message = OutboundMessage.objects.get(action="manual")
    assert (message.case_id, message.created_by, message.template) == (case.pk, collector, template)
    assert CaseEvent.objects.filter(case=case, kind=EventKind.MESSAGE, actor=collector).exists()


def test_an_unknown_or_unapproved_template_is_refused_on_its_field(client, collector, case, template):
    template.approved = False
    template.save(update_fields=["approved"])
    client.force_login(collector)

    response = client.post(send_url(case), {"template": template.pk})

    assert response.status_code == 400
    assert "template" in response.context["form"].errors
    assert not OutboundMessage.objects.filter(action="manual").exists()


def test_another_collector_gets_404(client, case, template):
    client.force_login(UserFactory(username="collector-b", role="collector"))

    assert client.get(send_url(case), {"template": template.pk}).status_code == 404
    assert client.post(send_url(case), {"template": template.pk}).status_code == 404
    assert not OutboundMessage.objects.filter(action="manual").exists()


def test_a_legal_user_who_sees_the_case_may_not_send(client, case, template):
    client.force_login(UserFactory(username="lawyer", role="legal"))

    response = client.post(send_url(case), {"template": template.pk})

    assert response.status_code == 403
    assert not OutboundMessage.objects.filter(action="manual").exists()
