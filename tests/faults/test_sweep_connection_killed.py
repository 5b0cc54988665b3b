"""(c) PostgreSQL drops the sweep's own connection mid-run (pg_terminate_backend).

The sweep runs as `manage.py escalate` in a subprocess whose connection carries an
application_name of its own, so the test terminates that backend and no other. The batches
committed before the kill stay; the one in flight rolls back; the next run finishes the
work with no transition, event or message twice.
"""

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from cases.models import Case, CaseEvent, SweepRun
from cases.services import sweep_run
from notifications.models import OutboundMessage
from tests.faults.conftest import overdue_loans
from tests.support.celery_worker import test_database_url as worker_database_url
from tests.support.celery_worker import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
LOANS, BATCH = 1500, 100
DUE = dt.date(2026, 3, 1)


def stage_changes_to(code: str) -> int:
    return CaseEvent.objects.filter(kind="stage_changed", detail__to=code).count()


def test_a_killed_sweep_connection_leaves_nothing_half_done_and_the_next_run_finishes():
    overdue_loans(LOANS, due=DUE)
    sweep_run(as_of=DUE + dt.timedelta(days=2))  # every case opens at warning
    assert Case.objects.filter(stage__code="warning").count() == LOANS

    # Day 5: every case moves to reminder. This run's connection is killed mid-way.
    as_of = DUE + dt.timedelta(days=5)
    application_name = f"fault-sweep-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test",
        "DATABASE_URL": f"{worker_database_url()}?application_name={application_name}",
        # Tasks queued on commit go nowhere: this test is about the database.
        "CELERY_BROKER_URL": "memory://",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "escalate", f"--as-of={as_of}", f"--batch-size={BATCH}", "-v", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: stage_changes_to("reminder") > 0 or process.poll() is not None, timeout=120, interval=0.01)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                [application_name],
            )
            terminated = cursor.fetchall()
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    moved_before_kill = stage_changes_to("reminder")
    assert terminated == [(True,)], "exactly the sweep's own connection is terminated"
    assert process.returncode != 0, "the sweep should have died with its connection"
    assert "terminat" in stderr.lower() or "connection" in stderr.lower(), stderr[-2000:]
    assert 0 < moved_before_kill < LOANS, f"the kill should land mid-run, {moved_before_kill} of {LOANS} moved"
    assert SweepRun.objects.filter(as_of=as_of, finished_at__isnull=True).count() == 1

    summary = sweep_run(as_of=as_of, batch_size=BATCH)  # the next run (beat, 15 minutes later)
    assert sum(summary.escalated.values()) == LOANS - moved_before_kill
    again = sweep_run(as_of=as_of, batch_size=BATCH)
    assert sum(again.escalated.values()) == 0 and again.opened == 0

    assert Case.objects.filter(stage__code="reminder").count() == LOANS
    per_case = (
        CaseEvent.objects.filter(kind="stage_changed", detail__to="reminder").values("case").annotate(n=Count("*"))
    )
    assert per_case.count() == LOANS
    doubled_events = per_case.filter(n__gt=1).count()
    assert CaseEvent.objects.filter(kind="opened").values("case").annotate(n=Count("*")).filter(n__gt=1).count() == 0
    # One reminder SMS per case (the outbox's idempotency key would refuse a second).
    reminder_sms = OutboundMessage.objects.filter(stage__code="reminder", channel="sms")
    doubled_messages = reminder_sms.values("case").annotate(n=Count("*")).filter(n__gt=1).count()
    print(f"\nsweep connection killed: {moved_before_kill} of {LOANS} cases moved before the kill, "
          f"the next run moved {sum(summary.escalated.values())}; doubled transitions {doubled_events}, "
          f"doubled messages {doubled_messages}")  # fmt: skip
    assert doubled_events == 0
    assert doubled_messages == 0
    assert reminder_sms.count() == LOANS
