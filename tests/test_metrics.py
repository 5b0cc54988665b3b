"""GET /metrics: Prometheus text read from PostgreSQL and Redis at scrape time, for staff
or a bearer token only, in a fixed number of queries whatever the data."""

import datetime as dt
import uuid

import pytest
import redis
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from cases.models import SweepRun
from notifications.models import OutboundMessage
from tests.factories import BorrowerFactory, UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-0123456789"


def samples(response) -> dict[tuple[str, tuple], float]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True))
    return client


def test_anonymous_and_non_staff_are_refused(client):
    assert client.get("/metrics").status_code == 403
    client.force_login(UserFactory(is_staff=False))
    assert client.get("/metrics").status_code == 403


def test_a_bearer_token_is_accepted_only_when_it_matches(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_sweep_figures_come_from_the_last_finished_run(staff_client):
    started = timezone.now() - dt.timedelta(minutes=5)
    SweepRun.objects.create(
        as_of=dt.date(2026, 5, 1), started_at=started, finished_at=started + dt.timedelta(seconds=99)
    )
    SweepRun.objects.create(
        as_of=dt.date(2026, 5, 2),
        started_at=started,
        finished_at=started + dt.timedelta(seconds=12.5),
        summary={"opened": 4, "resolved": 2, "escalated": {"reminder": 3, "phone": 1}},
    )
    SweepRun.objects.create(as_of=dt.date(2026, 5, 3), started_at=started)  # still running: ignored
    SweepRun.objects.create(as_of=dt.date(2026, 5, 4), started_at=started, finished_at=started, dry_run=True)
    found = samples(staff_client.get("/metrics"))
    assert found[("collections_sweep_duration_seconds", ())] == 12.5
    assert found[("collections_sweep_cases_moved", (("stage", "reminder"),))] == 3
    assert found[("collections_sweep_cases_moved", (("stage", "phone"),))] == 1
    assert found[("collections_sweep_cases", (("kind", "opened"),))] == 4
    assert found[("collections_sweep_cases", (("kind", "resolved"),))] == 2
    assert found[("collections_sweep_last_finished_timestamp_seconds", ())] == pytest.approx(
        (started + dt.timedelta(seconds=12.5)).timestamp()
    )


def test_messages_by_status_and_due_depth(staff_client):
    from cases.services import sweep_run

    today = dt.date.today()
    for _ in range(3):
        loan_with_schedule([today - dt.timedelta(days=3)], borrower=BorrowerFactory(timezone="UTC"))
    sweep_run(as_of=today)
    total = OutboundMessage.objects.count()
    assert total >= 6  # SMS and email per case
    first = OutboundMessage.objects.order_by("pk").first()
    OutboundMessage.objects.filter(pk=first.pk).update(status="sent")
    OutboundMessage.objects.exclude(pk=first.pk).update(scheduled_for=timezone.now() - dt.timedelta(minutes=10))
    found = samples(staff_client.get("/metrics"))
    assert found[("collections_outbox_messages", (("status", "sent"),))] == 1
    assert found[("collections_outbox_messages", (("status", "queued"),))] == total - 1
    assert found[("collections_outbox_messages", (("status", "failed"),))] == 0
    assert found[("collections_outbox_due_messages", ())] == total - 1
    assert 590 <= found[("collections_outbox_oldest_due_age_seconds", ())] <= 700


def test_celery_queue_length_is_read_from_redis(staff_client, settings):
    queue = f"test-metrics-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.rpush(queue, "a", "b", "c")
        client.rpush(f"{queue}\x06\x169", "d")
        found = samples(staff_client.get("/metrics"))
    finally:
        client.delete(queue, f"{queue}\x06\x169")
    assert found[("collections_celery_queue_length", (("queue", queue),))] == 4
    assert found[("collections_broker_up", ())] == 1


def test_a_scrape_costs_the_same_queries_whatever_the_data(staff_client, django_assert_max_num_queries):
    # Session and user (2), the idle-expiry session save (3: savepoint, UPDATE, release),
    # the last sweep (1), messages by status (1), due depth (1).
    with django_assert_max_num_queries(8) as small:
        samples(staff_client.get("/metrics"))
    today = dt.date.today()
    for _ in range(5):
        loan_with_schedule([today - dt.timedelta(days=3)], borrower=BorrowerFactory(timezone="UTC"))
    from cases.services import sweep_run

    sweep_run(as_of=today)
    with django_assert_max_num_queries(len(small.captured_queries)):
        samples(staff_client.get("/metrics"))


def test_the_outbox_queries_use_indexes():
    """On a table too big to scan: the planner uses the status and due indexes."""
    from django.db import connection

    from collections_portal.metrics import OutboxCollector

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN SELECT status, COUNT(*) FROM notifications_outboundmessage GROUP BY status")
        by_status = " ".join(row[0] for row in cursor.fetchall())
        cursor.execute(
            "EXPLAIN SELECT COUNT(*), MIN(scheduled_for) FROM notifications_outboundmessage"
            " WHERE status IN ('queued', 'deferred') AND scheduled_for <= now()"
        )
        due = " ".join(row[0] for row in cursor.fetchall())
    assert "outbox_status_claimed_idx" in by_status, by_status
    assert "outbox_due_idx" in due, due
    assert list(OutboxCollector().collect())  # the collector itself runs
