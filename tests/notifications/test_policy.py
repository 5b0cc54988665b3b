"""The compliance policy at send time: hours in the borrower's zone, caps, suppressions."""

import datetime as dt
import zoneinfo

import pytest

from cases.models import CaseStatus, Contact, Hold, HoldReason
from notifications.models import MessageStatus, MessageTemplate, OutboundMessage, SmsOptOut
from notifications.policy import DEFER, SEND, SUPPRESS, decide
from tests.factories import BorrowerFactory, CaseFactory, LoanFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def at(zone: str, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(UTC)


@pytest.fixture
def template():
    return MessageTemplate.objects.create(
        name="t-sms", channel="sms", language="en", body="Hi {{ opt_out_line }}", approved=True
    )


def message_for(template, *, timezone="Asia/Shanghai", channel="sms", action="sms", **borrower):
    b = BorrowerFactory(timezone=timezone, **borrower)
    case = CaseFactory(loan=LoanFactory(borrower=b))
    return OutboundMessage(
        case=case,
        borrower=b,
        channel=channel,
        to=b.phone if channel == "sms" else b.email,
        language="en",
        template=template,
        action=action,
        idempotency_key=f"k-{case.pk}-{action}",
        body="Hi",
    )


def sent_sms(message, at_time, n=1):
    for i in range(n):
        OutboundMessage.objects.create(
            case=message.case,
            borrower=message.borrower,
            channel="sms",
            to=message.to,
            language="en",
            action="sms",
            idempotency_key=f"sent-{message.case_id}-{at_time.isoformat()}-{i}",
            body="x",
            status=MessageStatus.SENT,
            claimed_at=at_time,
            sent_at=at_time,
        )


@pytest.mark.parametrize(
    ("zone", "local", "action", "opens_local"),
    [
        ("Asia/Shanghai", (2026, 3, 2, 7, 59), DEFER, (2026, 3, 2, 8, 0)),
        ("Asia/Shanghai", (2026, 3, 2, 8, 0), SEND, None),
        ("Asia/Shanghai", (2026, 3, 2, 20, 59), SEND, None),
        ("Asia/Shanghai", (2026, 3, 2, 21, 0), DEFER, (2026, 3, 3, 8, 0)),
        ("America/Los_Angeles", (2026, 3, 2, 6, 30), DEFER, (2026, 3, 2, 8, 0)),
        ("America/Los_Angeles", (2026, 3, 2, 12, 0), SEND, None),
        ("America/Los_Angeles", (2026, 3, 2, 23, 15), DEFER, (2026, 3, 3, 8, 0)),
        # The night before US daylight saving starts (8 March 2026): the opening is 08:00 PDT.
        ("America/Los_Angeles", (2026, 3, 7, 22, 0), DEFER, (2026, 3, 8, 8, 0)),
        ("Europe/London", (2026, 3, 28, 21, 30), DEFER, (2026, 3, 29, 8, 0)),
        ("Europe/London", (2026, 7, 1, 8, 30), SEND, None),
    ],
)
def test_it_sends_only_in_the_window_of_the_borrowers_own_time_zone(template, zone, local, action, opens_local):
    message = message_for(template, timezone=zone)
    decision = decide(message, now=at(zone, *local))
    assert decision.action == action
    if opens_local:
        assert decision.reason == "quiet_hours"
        assert decision.not_before == at(zone, *opens_local)


def test_the_same_instant_is_inside_for_one_borrower_and_outside_for_another(template):
    instant = at("Asia/Shanghai", 2026, 3, 2, 10, 0)  # 02:00 in London, 18:00 the day before in LA
    assert decide(message_for(template, timezone="Asia/Shanghai"), now=instant).action == SEND
    assert decide(message_for(template, timezone="Europe/London"), now=instant).action == DEFER
    assert decide(message_for(template, timezone="America/Los_Angeles"), now=instant).action == SEND


def test_the_daily_sms_cap_defers_to_the_next_local_morning(template):
    message = message_for(template, timezone="Asia/Shanghai")
    sent_sms(message, at("Asia/Shanghai", 2026, 3, 2, 9, 0))
    decision = decide(message, now=at("Asia/Shanghai", 2026, 3, 2, 15, 0))
    assert (decision.action, decision.reason) == (DEFER, "daily_sms_cap")
    assert decision.not_before == at("Asia/Shanghai", 2026, 3, 3, 8, 0)


def test_the_daily_cap_counts_the_borrowers_local_day(template):
    message = message_for(template, timezone="America/Los_Angeles")
    # 20:30 local on 1 March: the day before, locally, so it does not count on 2 March.
    sent_sms(message, at("America/Los_Angeles", 2026, 3, 1, 20, 30))
    assert decide(message, now=at("America/Los_Angeles", 2026, 3, 2, 9, 0)).action == SEND


def test_the_weekly_sms_cap_defers_until_the_oldest_drops_out(template):
    message = message_for(template, timezone="Asia/Shanghai")
    first = at("Asia/Shanghai", 2026, 3, 1, 10, 0)
    for day in range(3):
        sent_sms(message, first + dt.timedelta(days=day))
    decision = decide(message, now=at("Asia/Shanghai", 2026, 3, 5, 10, 0))
    assert (decision.action, decision.reason) == (DEFER, "weekly_sms_cap")
    assert decision.not_before == first + dt.timedelta(days=7)


def test_manual_sends_are_not_capped_but_keep_the_window(template):
    message = message_for(template, timezone="Asia/Shanghai", action="manual")
    sent_sms(message, at("Asia/Shanghai", 2026, 3, 2, 9, 0), n=3)
    assert decide(message, now=at("Asia/Shanghai", 2026, 3, 2, 11, 0)).action == SEND
    assert decide(message, now=at("Asia/Shanghai", 2026, 3, 2, 22, 0)).reason == "quiet_hours"


NOON = at("Asia/Shanghai", 2026, 3, 2, 12, 0)


def test_a_resolved_case_suppresses(template):
    message = message_for(template)
    message.case.status = CaseStatus.RESOLVED
    assert (decide(message, now=NOON).action, decide(message, now=NOON).reason) == (SUPPRESS, "resolved")


def test_a_closed_case_suppresses(template):
    message = message_for(template)
    message.case.status = CaseStatus.CLOSED
    assert decide(message, now=NOON).reason == "case_closed"


@pytest.mark.parametrize("reason", ["dispute", "breathing_space", "bankruptcy", "deceased", "legal_review"])
def test_a_hold_suppresses_and_names_its_kind(template, reason):
    message = message_for(template)
    Hold.objects.create(case=message.case, reason=reason, starts_at=NOON - dt.timedelta(days=1))
    decision = decide(message, now=NOON)
    assert (decision.action, decision.reason) == (SUPPRESS, f"hold:{reason}")


def test_a_cease_communication_request_suppresses_even_beside_another_hold(template):
    message = message_for(template)
    Hold.objects.create(case=message.case, reason=HoldReason.DISPUTE, starts_at=NOON - dt.timedelta(days=1))
    Hold.objects.create(case=message.case, reason=HoldReason.CEASE_COMMUNICATION, starts_at=NOON - dt.timedelta(days=1))
    assert decide(message, now=NOON).reason == "cease_communication"


def test_an_ended_or_released_hold_does_not_suppress(template):
    message = message_for(template)
    Hold.objects.create(
        case=message.case, reason="dispute", starts_at=NOON - dt.timedelta(days=9), ends_on=dt.date(2026, 3, 1)
    )
    Hold.objects.create(case=message.case, reason="dispute", starts_at=NOON - dt.timedelta(days=9), released_at=NOON)
    assert decide(message, now=NOON).action == SEND


def test_a_borrower_sms_opt_out_suppresses(template):
    message = message_for(template, sms_opt_out=True)
    assert decide(message, now=NOON).reason == "opt_out"


def test_an_opted_out_number_suppresses_for_every_borrower_with_it(template):
    message = message_for(template)
    SmsOptOut.objects.create(phone=message.to, source="keyword", keyword="STOP")
    assert decide(message, now=NOON).reason == "opt_out"


def test_an_email_opt_out_suppresses_email_only(template):
    email_template = MessageTemplate.objects.create(
        name="t-mail", channel="email", language="en", body="Hi", approved=True
    )
    message = message_for(email_template, channel="email", action="email", email_opt_out=True)
    assert decide(message, now=NOON).reason == "opt_out"


def test_no_consent_suppresses(template):
    message = message_for(template, consent_sms=False)
    assert decide(message, now=NOON).reason == "no_consent"


def test_an_unapproved_template_suppresses(template):
    template.approved = False
    message = message_for(template)
    assert decide(message, now=NOON).reason == "template_not_approved"


def test_a_message_without_an_address_suppresses(template):
    message = message_for(template)
    message.to = ""
    assert decide(message, now=NOON).reason == "no_address"


def test_third_parties_never_get_automated_messages(template):
    message = message_for(template)
    Contact.objects.create(borrower=message.borrower, name="母亲", phone="+8613999999999", relationship="parent")
    message.to = "+8613999999999"
    assert decide(message, now=NOON).reason == "third_party"
