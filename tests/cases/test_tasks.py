"""The sweep as beat runs it: a real Celery worker on the real Redis, and the seeded schedule."""

import datetime as dt

import pytest
from django_celery_beat.models import PeriodicTask

from cases.models import Case, SweepRun
from cases.tasks import escalation_sweep, rebalance_collectors
from collections_portal.celery import app
from tests.factories import loan_with_schedule
from tests.support.celery_worker import celery_worker, wait_for

AS_OF = dt.date(2026, 6, 1)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_sweep_and_a_redelivered_task_changes_nothing():
    for days in (2, 10, 40):
        loan_with_schedule([AS_OF - dt.timedelta(days=days)])

    with celery_worker() as worker:
        escalation_sweep.apply_async(kwargs={"as_of": AS_OF.isoformat()}, queue=worker.queue)
        wait_for(lambda: SweepRun.objects.filter(finished_at__isnull=False).count() == 1)
        stages = sorted(Case.objects.values_list("stage__code", flat=True))
        # The same task delivered again (acks late after a crash) must be a no-op.
        escalation_sweep.apply_async(kwargs={"as_of": AS_OF.isoformat()}, queue=worker.queue)
        wait_for(lambda: SweepRun.objects.filter(finished_at__isnull=False).count() == 2)

    assert stages == ["phone", "third_party", "warning"]
    second = SweepRun.objects.order_by("started_at").last()
    assert second.summary["opened"] == 0
    assert second.summary["escalated"] == {}
    assert Case.objects.count() == 3


@pytest.mark.django_db
def test_the_schedule_is_seeded_and_names_registered_tasks():
    tasks = {t.name: t for t in PeriodicTask.objects.filter(enabled=True)}
    sweep_every_15 = tasks["Escalation sweep (every 15 minutes)"]
    assert (sweep_every_15.interval.every, sweep_every_15.interval.period) == (15, "minutes")
    daily = tasks["Escalation: daily run after midnight"]
    assert (daily.crontab.hour, daily.crontab.minute, str(daily.crontab.timezone)) == ("0", "5", "Asia/Shanghai")
    assert "Housekeeping: share out cases of inactive collectors" in tasks
    app.loader.import_default_modules()
    for task in tasks.values():
        assert task.task in app.tasks, task.task


def test_reliable_delivery_settings():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] >= 3600


@pytest.mark.django_db
def test_rebalance_task_runs_inline():
    assert rebalance_collectors.apply().get() == 0
