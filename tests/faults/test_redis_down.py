"""(b) The broker (Redis) dies during dispatch and stays down through a sweep.

The sweep needs only PostgreSQL: it completes and its messages wait as queued rows.
When Redis returns, the worker reconnects, the release task re-queues what the broker lost,
and every message goes out once. The shared Redis on 6379 is never touched: the broker
here is a private redis-server on a free port.
"""

import datetime as dt
import time

import pytest
import time_machine

from cases.models import Case, SweepRun
from cases.services import sweep_run
from notifications.models import MessageStatus, OutboundMessage
from notifications.tasks import release_due_messages
from tests.faults.conftest import in_window_zone, lost_and_duplicated, overdue_loans, statuses
from tests.support.celery_worker import celery_worker, wait_for
from tests.support.redis_server import RedisServer, celery_broker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
FIRST, SECOND = 150, 100


@pytest.fixture
def private_broker():
    server = RedisServer().start()
    try:
        with celery_broker(server.url):
            yield server
    finally:
        server.stop()


def test_sweep_completes_without_redis_and_dispatch_resumes_when_it_returns(twilio_server, settings, private_broker):
    settings.SMS_BACKEND = "locmem"
    today = dt.datetime.now(dt.UTC).date()
    zone = in_window_zone()
    overdue_loans(FIRST, due=today - dt.timedelta(days=3), zone=zone, prefix="A")
    twilio_server.latency = 0.02
    env = {**twilio_server.env(), "CELERY_BROKER_URL": private_broker.url}

    with celery_worker(extra_env=env, concurrency=2) as worker:
        sweep_run(as_of=today)
        wait_for(lambda: statuses()[MessageStatus.SENT] >= FIRST // 5, timeout=60, interval=0.05)
        private_broker.kill()  # mid-dispatch
        at_outage = statuses()
        assert at_outage[MessageStatus.SENT] < FIRST, "Redis died too late to test anything"

        # More loans fall overdue and the sweep runs while the broker is down.
        overdue_loans(SECOND, due=today - dt.timedelta(days=3), zone=zone, prefix="B")
        started = time.monotonic()
        summary = sweep_run(as_of=today)
        sweep_seconds = time.monotonic() - started
        assert summary.opened == SECOND
        assert SweepRun.objects.filter(finished_at__isnull=False).count() == 2
        assert Case.objects.count() == FIRST + SECOND
        assert OutboundMessage.objects.filter(channel="sms").count() == FIRST + SECOND
        time.sleep(1)  # whatever the worker still held finishes; nothing new can arrive

        private_broker.start()  # same port, its append-only file replayed
        # The periodic release task (beat, every minute) finds queued rows whose task was lost.
        with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)):
            released = release_due_messages()
        assert released > 0
        wait_for(
            lambda: statuses()[MessageStatus.QUEUED] == 0 and statuses()[MessageStatus.SENDING] == 0,
            timeout=120,
            interval=0.2,
        )
        assert worker.process.poll() is None, "the worker should have survived the outage and reconnected"

    final = statuses()
    lost, duplicated = lost_and_duplicated(twilio_server)
    print(f"\nRedis outage: {FIRST + SECOND} messages, at outage {dict(at_outage)}, sweep without broker "
          f"{sweep_seconds:.1f} s, final {dict(final)}, lost {lost}, duplicated {duplicated}")  # fmt: skip
    assert final == {MessageStatus.SENT: FIRST + SECOND}
    assert lost == 0
    assert duplicated == 0
