"""(d) Twilio answers bursts of 429 and 500; (e) the SMTP server is down for a while.

Dispatch runs in this process with the clock under the test's control (time_machine), so
the retries' backoff (30 s, 60 s, ... with jitter) passes in moments: each round sends what
is due, then the clock moves on, as the periodic release task would find it. The real
twilio client and Django's SMTP backend talk to the loopback servers.
"""

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import time_machine

from cases.services import sweep_run
from notifications.dispatch import dispatch_messages_now
from notifications.models import PENDING_STATUSES, MessageStatus, OutboundMessage
from notifications.tasks import CHUNK
from tests.faults.conftest import lost_and_duplicated, overdue_loans, statuses

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
# 10:00 in Shanghai: inside the sending window for the next few hours.
START = dt.datetime(2026, 6, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
STEP = dt.timedelta(minutes=3)


def dispatch_until_settled(traveller, *, channel: str, rounds: int = 60, on_round=None) -> int:
    """What the worker and the release task do together: send every due message in chunks,
    then let time pass. Returns the number of rounds it took."""
    for number in range(1, rounds + 1):
        if on_round:
            on_round(number)
        pending = OutboundMessage.objects.filter(channel=channel, status__in=PENDING_STATUSES)
        if not pending.exists():
            return number
        due = list(pending.filter(scheduled_for__lte=dt.datetime.now(dt.UTC)).values_list("pk", flat=True))
        for start in range(0, len(due), CHUNK):
            dispatch_messages_now(due[start : start + CHUNK])
        traveller.shift(STEP)
    raise AssertionError(f"{channel} messages still pending after {rounds} rounds: {statuses(channel)}")


def test_bursts_of_429_and_500_are_retried_and_every_sms_goes_once(twilio_server):
    count = 40
    with time_machine.travel(START, tick=False) as traveller:
        overdue_loans(count, due=START.date() - dt.timedelta(days=3))
        sweep_run(as_of=START.date())
        assert statuses()[MessageStatus.QUEUED] == count
        twilio_server.fail_next(25, status=429, retry_after=1)
        twilio_server.fail_next(25, status=500)
        rounds = dispatch_until_settled(traveller, channel="sms")

    failures = Counter(r.status for r in twilio_server.requests if r.status >= 400)
    lost, duplicated = lost_and_duplicated(twilio_server)
    final = statuses()
    print(f"\nTwilio 429/500 bursts: {count} SMS, provider errors {dict(failures)}, {rounds} rounds, "
          f"final {dict(final)}, lost {lost}, duplicated {duplicated}")  # fmt: skip
    assert failures == {429: 25, 500: 25}
    assert final == {MessageStatus.SENT: count}
    assert len(twilio_server.created) == count
    assert lost == 0
    assert duplicated == 0
    # The errors are kept on the rows that met them, for the outbox page.
    assert OutboundMessage.objects.filter(channel="sms", attempts__gt=1).count() > 0


def test_emails_wait_while_the_smtp_server_is_down_and_go_out_once_when_it_returns(smtp_server):
    count = 20
    smtp_server.stop()  # down before the first attempt; the port stays reserved for its return

    def bring_back(round_number: int) -> None:
        if round_number == 4 and not smtp_server.running:
            smtp_server.start()

    with time_machine.travel(START, tick=False) as traveller:
        overdue_loans(count, due=START.date() - dt.timedelta(days=3), email=True)
        sweep_run(as_of=START.date())
        OutboundMessage.objects.filter(channel="sms").update(status=MessageStatus.SUPPRESSED)  # not this test's
        assert statuses("email")[MessageStatus.QUEUED] == count
        rounds = dispatch_until_settled(traveller, channel="email", on_round=bring_back)

    final = statuses("email")
    received = Counter(tuple(message.rcpt_tos) for message in smtp_server.received)
    expected = set(OutboundMessage.objects.filter(channel="email").values_list("to", flat=True))
    attempts = sorted(OutboundMessage.objects.filter(channel="email").values_list("attempts", flat=True))
    duplicated = sum(n - 1 for n in received.values())
    lost = count - len({to for (to,) in received})
    print(f"\nSMTP outage: {count} emails, {rounds} rounds, attempts {attempts[0]}..{attempts[-1]}, "
          f"final {dict(final)}, lost {lost}, duplicated {duplicated}")  # fmt: skip
    assert final == {MessageStatus.SENT: count}
    assert {to for (to,) in received} == expected
    assert duplicated == 0
    assert lost == 0
    assert attempts[0] >= 2, "every email met the outage at least once"
