"""(a) SIGKILL the Celery worker while it dispatches 1,000 SMS through the loopback Twilio.

After a restart (and the periodic release and reconcile tasks), every message is settled
and Twilio accepted no (message, number) twice: lost 0, duplicated 0.
"""

import datetime as dt

import pytest
import time_machine

from cases.services import sweep_run
from notifications.models import MessageStatus
from notifications.reconcile import reconcile_stuck
from notifications.tasks import release_due_messages
from tests.faults.conftest import in_window_zone, lost_and_duplicated, overdue_loans, statuses
from tests.support.celery_worker import celery_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
MESSAGES = 1000


def test_sigkill_mid_dispatch_of_1000_messages_loses_and_duplicates_nothing(twilio_server, settings):
    settings.SMS_BACKEND = "locmem"  # this process never sends; the workers do, to Twilio
    today = dt.datetime.now(dt.UTC).date()
    overdue_loans(MESSAGES, due=today - dt.timedelta(days=3), zone=in_window_zone())
    twilio_server.latency = 0.005
    env = twilio_server.env()

    with celery_worker(extra_env=env, concurrency=2) as worker:
        sweep_run(as_of=today)
        assert sum(statuses().values()) == MESSAGES  # one SMS per borrower, dispatch already under way
        wait_for(lambda: statuses()[MessageStatus.SENT] >= MESSAGES // 5, timeout=120, interval=0.05)
        worker.kill()
    at_kill = statuses()
    assert at_kill[MessageStatus.SENT] < MESSAGES, f"the kill came too late to test anything: {at_kill}"

    with celery_worker(extra_env=env, concurrency=2, queue=worker.queue):
        # The dead worker's unacknowledged tasks come back only after the visibility
        # timeout; the periodic release task re-queues their rows a few minutes later.
        with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)):
            release_due_messages()
        wait_for(
            lambda: statuses()[MessageStatus.QUEUED] == 0 and statuses()[MessageStatus.SENDING] <= at_kill["sending"],
            timeout=120,
        )
    # Rows the kill caught in `sending`: the reconcile task asks Twilio, or hands them to a person.
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)):
        reconcile_stuck()

    final = statuses()
    lost, duplicated = lost_and_duplicated(twilio_server)
    print(f"\nworker SIGKILL: {MESSAGES} messages, at kill {dict(at_kill)}, final {dict(final)}, "
          f"lost {lost}, duplicated {duplicated}")  # fmt: skip
    assert sum(final.values()) == MESSAGES
    assert lost == 0
    assert duplicated == 0
    assert final[MessageStatus.SENT] >= MESSAGES - at_kill["sending"] - 2
