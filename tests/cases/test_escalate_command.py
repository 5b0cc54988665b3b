"""`manage.py escalate`: the summary, --as-of, --dry-run, and two sweeps at once in two processes."""

import datetime as dt
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from cases.models import Case, CaseEvent, CaseStatus, EventKind, SweepRun
from tests.factories import loan_with_schedule

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2026, 6, 1)


def make_loans(days_past_due):
    return [loan_with_schedule([AS_OF - dt.timedelta(days=d)]) for d in days_past_due]


def run(*args):
    out = StringIO()
    call_command("escalate", *args, stdout=out, verbosity=0)
    return out.getvalue()


@pytest.mark.django_db
def test_it_prints_a_summary_and_a_second_run_changes_nothing():
    make_loans([0, 2, 5, 10, 40, 100])

    first = run("--as-of", AS_OF.isoformat())
    events = CaseEvent.objects.count()
    second = run("--as-of", AS_OF.isoformat())

    assert "opened:                 5" in first
    assert "escalated to warning:    1" in first
    assert "waiting for approval:   1" in first
    assert "nothing changed" in second
    assert CaseEvent.objects.count() == events


@pytest.mark.django_db
def test_dry_run_reports_and_saves_nothing():
    make_loans([3, 12])
    output = run("--as-of", AS_OF.isoformat(), "--dry-run")
    assert "dry run" in output
    assert "opened:                 2" in output
    assert not Case.objects.exists()
    assert not SweepRun.objects.exists()


@pytest.mark.django_db
def test_an_earlier_business_date_changes_nothing_and_says_so():
    make_loans([3])
    run("--as-of", AS_OF.isoformat())
    before = list(Case.objects.values_list("days_past_due", "stage__code"))
    output = run("--as-of", (AS_OF - dt.timedelta(days=2)).isoformat())
    assert "earlier than the last sweep" in output
    assert list(Case.objects.values_list("days_past_due", "stage__code")) == before


@pytest.mark.django_db
def test_a_bad_date_is_refused_with_the_format():
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run("--as-of", "01/06/2026")


def sweep_in_a_process(lock: bool) -> subprocess.Popen:
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test",
        "DATABASE_URL": f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/"
        f"{settings_dict['NAME']}",
        "COLLECTIONS_SWEEP_LOCK": "true" if lock else "false",
        "COLLECTIONS_BATCH_SIZE": "25",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "escalate", "--as-of", AS_OF.isoformat(), "-v", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lock", [True, False], ids=["advisory-lock", "conditional-writes-only"])
def test_two_sweeps_at_once_end_exactly_as_one_would(lock):
    dpds = [d % 201 for d in range(0, 201 * 2, 3)]  # 134 loans spread over DPD 0..200
    make_loans(dpds)
    expected_cases = sum(1 for d in dpds if d >= 1)
    expected_waiting = sum(1 for d in dpds if d >= 91)

    processes = [sweep_in_a_process(lock) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in processes]

    for process, (_out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
    assert Case.objects.count() == expected_cases
    assert Case.objects.filter(status=CaseStatus.AWAITING_APPROVAL).count() == expected_waiting
    # Exactly one opening and one stage entry per case: nothing was done twice.
    assert CaseEvent.objects.filter(kind=EventKind.OPENED).count() == expected_cases
    assert CaseEvent.objects.filter(kind=EventKind.STAGE_CHANGED).count() == expected_cases
    assert CaseEvent.objects.filter(kind=EventKind.AWAITING_APPROVAL).count() == expected_waiting
    outputs = [out for out, _ in results]
    if lock:
        # Queued behind the lock, the second sweep found nothing left to do.
        assert sum("nothing changed" in out for out in outputs) == 1
    assert SweepRun.objects.filter(finished_at__isnull=False).count() == 2
