"""GET /metrics: Prometheus metrics read from PostgreSQL and Redis at scrape time.

Nothing is counted in process memory: the web runs several gunicorn workers on several
machines, and any of them may answer a scrape, so every figure comes from the shared state
(SweepRun rows, the outbox, the broker's queues) and all workers report the same numbers.
Each scrape costs a handful of index-backed queries:

* the last finished sweep: the newest non-dry SweepRun by business date (index on as_of);
* messages by status: GROUP BY status over outbox_status_claimed_idx (status leads it);
* messages due now and the oldest one's age: the partial index outbox_due_idx;
* Celery's queue length and unacknowledged tasks: LLEN / HLEN on the Redis broker.

Access: a staff user's session, or ``Authorization: Bearer <METRICS_TOKEN>`` for the
Prometheus server (the token is compared in constant time; unset means staff only).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cases.models import SweepRun
from notifications.models import MessageStatus, OutboundMessage

logger = logging.getLogger(__name__)
# kombu's Redis transport keeps priority levels 3, 6 and 9 in lists named queue + SEP + level.
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)
SWEEP_COUNTS = ("opened", "resolved", "awaiting_approval", "held", "promises_broken", "plans_broken")


class SweepCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        run = (
            SweepRun.objects.filter(dry_run=False, finished_at__isnull=False)
            .order_by("-as_of", "-started_at")
            .only("as_of", "started_at", "finished_at", "summary")
            .first()
        )
        duration = GaugeMetricFamily(
            "collections_sweep_duration_seconds", "Wall-clock duration of the last finished escalation sweep."
        )
        finished = GaugeMetricFamily(
            "collections_sweep_last_finished_timestamp_seconds", "When the last escalation sweep finished (Unix time)."
        )
        moved = GaugeMetricFamily(
            "collections_sweep_cases_moved", "Cases the last sweep moved to a higher stage, by stage.", labels=["stage"]
        )
        counts = GaugeMetricFamily(
            "collections_sweep_cases", "Cases the last sweep opened, resolved, held, ... by kind.", labels=["kind"]
        )
        if run is not None and run.finished_at is not None:
            duration.add_metric([], (run.finished_at - run.started_at).total_seconds())
            finished.add_metric([], run.finished_at.timestamp())
            summary = run.summary or {}
            for stage, number in sorted((summary.get("escalated") or {}).items()):
                moved.add_metric([stage], number)
            for kind in SWEEP_COUNTS:
                counts.add_metric([kind], summary.get(kind, 0))
        yield from (duration, finished, moved, counts)


class OutboxCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        by_status = dict(
            OutboundMessage.objects.order_by().values_list("status").annotate(n=Count("*")).values_list("status", "n")
        )
        messages = GaugeMetricFamily("collections_outbox_messages", "Outbox rows by status.", labels=["status"])
        for status in MessageStatus.values:
            messages.add_metric([status], by_status.get(status, 0))
        yield messages

        now = timezone.now()
        due = OutboundMessage.objects.filter(
            status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED], scheduled_for__lte=now
        ).aggregate(n=Count("*"), oldest=Min("scheduled_for"))
        depth = GaugeMetricFamily(
            "collections_outbox_due_messages", "Messages queued or deferred whose time has come (not yet claimed)."
        )
        depth.add_metric([], due["n"])
        yield depth
        age = GaugeMetricFamily(
            "collections_outbox_oldest_due_age_seconds", "How long the oldest due message has been waiting."
        )
        age.add_metric([], (now - due["oldest"]).total_seconds() if due["oldest"] else 0)
        yield age


class CeleryQueueCollector(Collector):
    """Queue length straight from the Redis broker (other brokers: no figure, not an error)."""

    def collect(self) -> Iterator[Metric]:
        broker = settings.CELERY_BROKER_URL
        if not broker.startswith(("redis://", "rediss://", "unix://")):
            return
        import redis

        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        length = GaugeMetricFamily(
            "collections_celery_queue_length", "Tasks waiting in the broker's queue.", labels=["queue"]
        )
        unacked = GaugeMetricFamily(
            "collections_celery_unacked_tasks", "Tasks delivered to a worker and not yet acknowledged."
        )
        up = GaugeMetricFamily("collections_broker_up", "1 when the broker answered this scrape.")
        client = redis.Redis.from_url(broker, socket_timeout=2, socket_connect_timeout=2)
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.llen(queue)
                for step in KOMBU_PRIORITY_STEPS:
                    pipe.llen(f"{queue}{KOMBU_PRIORITY_SEPARATOR}{step}")
                pipe.hlen("unacked")
                *lengths, in_flight = pipe.execute()
        except redis.RedisError as exc:
            logger.warning("metrics: the broker did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        finally:
            client.close()
        up.add_metric([], 1)
        length.add_metric([queue], sum(lengths))
        unacked.add_metric([], in_flight)
        yield from (up, length, unacked)


registry = CollectorRegistry(auto_describe=False)
for _collector in (SweepCollector(), OutboxCollector(), CeleryQueueCollector()):
    registry.register(_collector)


def _authorized(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())
    return False


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        return HttpResponse(
            "Forbidden: staff login or a metrics token required.\n", status=403, content_type="text/plain"
        )
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
