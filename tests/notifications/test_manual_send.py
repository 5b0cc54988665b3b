"""A collector sends an approved template from a case, through the same outbox and policy."""

import datetime as dt

import pytest
import time_machine

from cases.models import CaseEvent, Hold
from cases.services import sweep_run
from notifications.dispatch import dispatch_message
from notifications.models import MessageStatus, MessageTemplate
from notifications.outbox import manual_preview, message_send_manual
from tests.factories import BorrowerFactory, UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db
AS_OF = dt.date(2026, 6, 2)


@pytest.fixture
def case():
    loan = loan_with_schedule([AS_OF - dt.timedelta(days=10)], borrower=BorrowerFactory(name="赵敏"))
    with time_machine.travel(dt.datetime(2026, 6, 2, 3, 0, tzinfo=dt.UTC), tick=False):
        sweep_run(as_of=AS_OF)
    return loan.cases.get()


@pytest.fixture
def template():
    return MessageTemplate.objects.get(name="phone-sms-zh-hans")


def test_the_preview_shows_the_text_and_that_it_may_go_now(case, template):
    body, decision = manual_preview(case=case, template=template, now=dt.datetime(2026, 6, 2, 4, 0, tzinfo=dt.UTC))
    assert "赵敏" in body
    assert decision.action == "send"


def test_at_night_the_collector_is_told_when_it_will_go(case, template):
    _body, decision = manual_preview(case=case, template=template, now=dt.datetime(2026, 6, 2, 14, 0, tzinfo=dt.UTC))
    assert (decision.action, decision.reason) == ("defer", "quiet_hours")
    assert decision.not_before == dt.datetime(2026, 6, 3, 0, 0, tzinfo=dt.UTC)  # 08:00 in Shanghai


def test_a_held_case_is_refused_with_the_reason(case, template):
    Hold.objects.create(case=case, reason="dispute", starts_at=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    _body, decision = manual_preview(case=case, template=template, now=dt.datetime(2026, 6, 2, 4, 0, tzinfo=dt.UTC))
    assert (decision.action, decision.reason) == ("suppress", "hold:dispute")


def test_a_manual_send_goes_through_the_outbox_and_is_not_capped(case, template, sms_outbox):
    collector = UserFactory(username="c1", role="collector")
    with time_machine.travel(dt.datetime(2026, 6, 2, 4, 0, tzinfo=dt.UTC), tick=True):
        for message in case.outbound_messages.filter(channel="sms"):
            dispatch_message(message.pk)  # the automated SMS of the day uses up the daily cap
        message, decision = message_send_manual(case=case, template=template, by=collector)
        outcome = dispatch_message(message.pk)

    assert decision.action == "send"
    assert outcome.status == MessageStatus.SENT
    assert message.created_by == collector and message.action == "manual"
    assert CaseEvent.objects.filter(case=case, kind="message", actor=collector).exists()
    assert len(sms_outbox) == 2
