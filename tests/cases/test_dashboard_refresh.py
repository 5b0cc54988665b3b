"""The dashboard's summary rows: each figure on a small data set checked by hand, and the
refresh idempotent when run twice, and twice at once on two database connections."""

import datetime as dt
import threading
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Model
from django_celery_beat.models import PeriodicTask

from cases.models import (
    BucketRoll,
    CaseEvent,
    CaseMonthBucket,
    CaseStatus,
    CollectorDay,
    ContactAttempt,
    DailyActivity,
    DashboardRefresh,
    EventKind,
    Payment,
    PromiseToPay,
    StageSnapshot,
)
from cases.services.reporting import bucket_for, dashboard_refresh
from cases.tasks import dashboard_refresh as dashboard_refresh_task
from tests.factories import CaseFactory, LoanFactory, UserFactory, stage

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
FEB_END = dt.date(2026, 2, 28)
AS_OF = dt.date(2026, 3, 10)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SH)


def rows(model: type[Model], *fields: str) -> list[tuple]:
    return sorted(model.objects.values_list(*fields))


@pytest.fixture
def book(db):
    """Six cases, two collectors and one day of work (see each test for the hand count)."""
    alice = UserFactory(username="alice", role="collector")
    bob = UserFactory(username="bob", role="collector")
    opened = at(dt.date(2026, 2, 1), 9)

    def case(code, dpd, outstanding, collector, **kwargs):
        return CaseFactory(
            stage=stage(code),
            days_past_due=dpd,
            outstanding=Decimal(outstanding),
            overdue_amount=Decimal(outstanding) / 2,
            assigned_to=collector,
            opened_at=opened,
            **kwargs,
        )

    # Days past due at the end of February: c1, c2, c3 and c6 in M1, c4 in M2, c5 in M3.
    cases = {
        "c1": case("warning", 5, "1000.00", alice),
        "c2": case("reminder", 20, "2000.00", alice),
        "c3": case("reminder", 25, "3000.00", bob),
        "c4": case("phone", 45, "4000.00", bob),
        "c5": case("third_party", 70, "5000.00", bob),
        "c6": case("warning", 10, "1000.00", bob),
    }
    return {"alice": alice, "bob": bob, **cases}


def move_to_march(book) -> None:
    """Ten days into March: the cases aged, c3 rolled to M2, c4 to M3, c5 to M3+ (and waits
    for approval of litigation), and c6 was paid off and cured."""
    updates = {"c1": 15, "c2": 30, "c3": 35, "c4": 75, "c5": 100}
    for key, dpd in updates.items():
        case = book[key]
        case.days_past_due = dpd
        case.save()
    book["c5"].status = CaseStatus.AWAITING_APPROVAL
    book["c5"].pending_stage = stage("litigation")
    book["c5"].save()
    c6 = book["c6"]
    c6.status, c6.days_past_due, c6.outstanding, c6.resolved_at = CaseStatus.RESOLVED, 0, 0, at(AS_OF, 10)
    c6.save()


def a_day_of_work(book) -> None:
    alice, bob = book["alice"], book["bob"]
    c1, c2, c6 = book["c1"], book["c2"], book["c6"]
    for hour, outcome in ((9, "right_party_contact"), (10, "promise_to_pay"), (11, "no_answer")):
        ContactAttempt.objects.create(
            case=c1, channel="phone", outcome=outcome, attempted_at=at(AS_OF, hour), collector=alice
        )
    # Half past midnight in Shanghai is the day before in UTC: still the 10th here.
    ContactAttempt.objects.create(
        case=c2, channel="phone", outcome="no_answer", attempted_at=at(AS_OF, 0, 30), collector=bob
    )
    PromiseToPay.objects.create(
        case=c1, amount=Decimal("300.00"), due_date=AS_OF, created_at=at(AS_OF, 10), created_by=alice
    )
    # Paid while c1 was open: Alice's. Paid as c6 was cured: Bob's. A loan without a case: nobody's.
    Payment.objects.create(external_id="p1", loan=c1.loan, amount=Decimal("300.00"), paid_at=at(AS_OF, 11))
    Payment.objects.create(external_id="p2", loan=c6.loan, amount=Decimal("1000.00"), paid_at=at(AS_OF, 10))
    Payment.objects.create(external_id="p3", loan=LoanFactory(), amount=Decimal("50.00"), paid_at=at(AS_OF, 12))
    timeline = [
        (c1, EventKind.STAGE_CHANGED, at(AS_OF, 0, 5)),
        (c2, EventKind.STAGE_CHANGED, at(AS_OF, 0, 5)),
        (c2, EventKind.STAGE_CHANGED, at(AS_OF - dt.timedelta(days=1), 23, 30)),  # the 9th
        (c1, EventKind.STAGE_CHANGED, at(AS_OF + dt.timedelta(days=1), 7, 30)),  # the 11th: outside
        (c2, EventKind.OPENED, at(AS_OF, 8)),
        (c6, EventKind.RESOLVED, at(AS_OF, 10)),
        (c1, EventKind.PROMISE_MADE, at(AS_OF, 10)),
        (c2, EventKind.PROMISE_KEPT, at(AS_OF, 12)),
        (c6, EventKind.PROMISE_BROKEN, at(AS_OF, 13)),
    ]
    CaseEvent.objects.bulk_create(CaseEvent(case=case, kind=kind, at=when) for case, kind, when in timeline)


@pytest.mark.parametrize(
    ("days_past_due", "bucket"),
    [(0, "cured"), (1, "m1"), (30, "m1"), (31, "m2"), (60, "m2"), (61, "m3"), (90, "m3"), (91, "m3plus")],
)
def test_buckets_have_the_trade_boundaries(days_past_due, bucket):
    assert bucket_for(days_past_due) == bucket


def test_the_snapshot_counts_live_cases_and_balances_per_stage_and_bucket(book):
    move_to_march(book)

    dashboard_refresh(as_of=AS_OF)

    assert rows(StageSnapshot, "date", "stage_code", "bucket", "case_count", "balance", "overdue") == [
        (AS_OF, "phone", "m3", 1, Decimal("4000.00"), Decimal("2000.00")),
        (AS_OF, "reminder", "m1", 1, Decimal("2000.00"), Decimal("1000.00")),
        (AS_OF, "reminder", "m2", 1, Decimal("3000.00"), Decimal("1500.00")),
        # Waiting for approval of litigation, still in the third-party stage; c6 is cured.
        (AS_OF, "third_party", "m3plus", 1, Decimal("5000.00"), Decimal("2500.00")),
        (AS_OF, "warning", "m1", 1, Decimal("1000.00"), Decimal("500.00")),
    ]


def test_roll_rates_compare_each_case_with_its_bucket_a_month_before(book):
    dashboard_refresh(as_of=FEB_END)
    assert rows(CaseMonthBucket, "bucket") == [("m1",), ("m1",), ("m1",), ("m1",), ("m2",), ("m3",)]
    move_to_march(book)

    dashboard_refresh(as_of=AS_OF)

    march = dt.date(2026, 3, 1)
    assert rows(BucketRoll, "month", "from_bucket", "to_bucket", "case_count", "balance") == [
        (march, "m1", "cured", 1, Decimal("1000.00")),  # c6
        (march, "m1", "m1", 2, Decimal("3000.00")),  # c1, c2
        (march, "m1", "m2", 1, Decimal("3000.00")),  # c3
        (march, "m2", "m3", 1, Decimal("4000.00")),  # c4
        (march, "m3", "m3plus", 1, Decimal("5000.00")),  # c5
    ]
    assert CaseMonthBucket.objects.get(month=march, case=book["c6"]).bucket == "cured"


def test_daily_activity_counts_the_business_day_in_the_business_time_zone(book):
    move_to_march(book)
    a_day_of_work(book)

    dashboard_refresh(as_of=AS_OF)

    tenth = DailyActivity.objects.get(date=AS_OF)
    assert (tenth.cases_opened, tenth.cases_cured, tenth.cases_closed, tenth.escalations) == (1, 1, 0, 2)
    assert (tenth.promises_made, tenth.promises_kept, tenth.promises_broken) == (1, 1, 1)
    assert (tenth.contacts, tenth.right_party_contacts) == (4, 2)
    assert tenth.amount_collected == Decimal("1300.00")
    ninth = DailyActivity.objects.get(date=AS_OF - dt.timedelta(days=1))
    assert (ninth.escalations, ninth.contacts, ninth.amount_collected) == (1, 0, Decimal("0.00"))


def test_collector_days_credit_contacts_promises_and_money_to_the_collector(book):
    move_to_march(book)
    a_day_of_work(book)

    dashboard_refresh(as_of=AS_OF)

    assert rows(
        CollectorDay, "collector__username", "date", "contacts", "right_party_contacts", "promises", "amount_collected"
    ) == [
        ("alice", AS_OF, 3, 2, 1, Decimal("300.00")),
        ("bob", AS_OF, 1, 0, 0, Decimal("1000.00")),
    ]


def snapshot_of_all_tables() -> dict[str, list]:
    return {
        model.__name__: sorted(tuple(v for k, v in row.items() if k != "id") for row in model.objects.values())
        for model in (StageSnapshot, CaseMonthBucket, BucketRoll, DailyActivity, CollectorDay, DashboardRefresh)
    }


def test_a_second_refresh_changes_nothing(book):
    move_to_march(book)
    a_day_of_work(book)
    first = dashboard_refresh(as_of=AS_OF)
    before = snapshot_of_all_tables()

    second = dashboard_refresh(as_of=AS_OF, now=at(AS_OF, 23))

    assert first.total > 0
    assert second.total == 0
    assert second.changes == dict.fromkeys(first.changes, 0)
    # Not even the refresh time moves when nothing changed.
    assert snapshot_of_all_tables() == before


def test_a_refresh_after_a_change_writes_only_the_difference(book):
    move_to_march(book)
    dashboard_refresh(as_of=AS_OF)
    book["c1"].outstanding = Decimal("900.00")
    book["c1"].save()

    result = dashboard_refresh(as_of=AS_OF)

    # The c1 row of this month and the warning/M1 snapshot row; nothing else.
    assert result.changes["case_month_bucket"] == 1
    assert result.changes["stage_snapshot"] == 1
    assert StageSnapshot.objects.get(stage_code="warning").balance == Decimal("900.00")


def test_bad_window_is_refused_before_anything_is_written(db):
    with pytest.raises(ValueError, match="days"):
        dashboard_refresh(as_of=AS_OF, days=0)
    assert not DashboardRefresh.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_on_two_connections_write_the_rows_once(book):
    move_to_march(book)
    a_day_of_work(book)
    start = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            start.wait(timeout=10)
            results.append(dashboard_refresh(as_of=AS_OF))
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    totals = sorted(result.total for result in results)
    assert totals[0] == 0 and totals[1] > 0
    assert StageSnapshot.objects.filter(date=AS_OF).count() == 5
    assert DailyActivity.objects.get(date=AS_OF).contacts == 4
    assert dashboard_refresh(as_of=AS_OF).total == 0


def test_the_periodic_task_runs_the_refresh_and_beat_has_its_entry(book):
    result = dashboard_refresh_task(as_of=AS_OF.isoformat())

    assert result["stage_snapshot"] == 4
    task = PeriodicTask.objects.get(task="cases.tasks.dashboard_refresh")
    assert task.enabled and task.crontab.minute == "7,22,37,52"
