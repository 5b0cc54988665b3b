"""Placing cases with agencies: least-loaded with capacity, none available, recall and
re-placement, recovery and commission, the automatic recall run twice, concurrent placers."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection

from cases.exceptions import ConflictError, PermissionDenied
from cases.models import CaseEvent, CaseStatus
from cases.services import payment_record, sweep_run
from legal import events
from legal.models import Placement, RecallReason
from legal.selectors import agency_performance, placements_list, unplaced_cases
from legal.services.placements import (
    case_replace,
    cases_place,
    placement_recall,
    placements_recall_stale,
)
from legal.tasks import recall_stale_placements
from tests.factories import loan_with_schedule

from .conftest import DUE, THIRD_PARTY_AT, make_agency, third_party_case

pytestmark = pytest.mark.django_db


def current(case):
    return Placement.objects.get(case=case, recalled_at__isnull=True)


def test_entering_the_stage_places_the_case_with_an_agency_and_writes_an_event():
    agency = make_agency("华信")
    case = third_party_case(amount="1234.50")

    placement = current(case)
    assert placement.agency == agency
    assert placement.balance_placed == Decimal("1234.50")
    assert placement.placed_at == THIRD_PARTY_AT
    event = CaseEvent.objects.get(case=case, kind=events.PLACED)
    assert event.detail["agency"] == agency.pk
    assert event.actor is None


def test_a_batch_goes_to_the_least_loaded_active_agencies_with_room():
    small = make_agency("A small", capacity=1)
    big = make_agency("B big", capacity=10)
    make_agency("C inactive", capacity=100, active=False)
    full = make_agency("D full", capacity=1)
    # D is full and B already holds one case.
    existing = [third_party_case() for _ in range(2)]
    Placement.objects.filter(case__in=existing).delete()
    cases_place(case_ids=[existing[0].pk], agency_id=full.pk)
    cases_place(case_ids=[existing[1].pk], agency_id=big.pk)

    loans = [loan_with_schedule([DUE]) for _ in range(4)]
    summary = sweep_run(as_of=DUE + dt.timedelta(days=40))
    assert summary.actions["place_agency"] == 4
    new = Placement.objects.filter(case__loan__in=loans, recalled_at__isnull=True)
    by_agency = {name: new.filter(agency__name=name).count() for name in ("A small", "B big", "C inactive", "D full")}
    # A (empty, room for 1) takes the first; B takes the rest; inactive and full ones none.
    assert by_agency == {"A small": 1, "B big": 3, "C inactive": 0, "D full": 0}
    assert Placement.objects.filter(agency=small, recalled_at__isnull=True).count() <= small.capacity


def test_placing_a_batch_costs_a_fixed_number_of_queries(django_assert_num_queries):
    make_agency("A")
    make_agency("B")
    few = [third_party_case() for _ in range(2)]
    many = [third_party_case() for _ in range(8)]
    Placement.objects.all().delete()
    # lock agencies, candidates, loads, history, insert placements, insert events (+ savepoint pair)
    with django_assert_num_queries(8):
        cases_place(case_ids=[c.pk for c in few])
    with django_assert_num_queries(8):
        cases_place(case_ids=[c.pk for c in many])
    assert Placement.objects.filter(recalled_at__isnull=True).count() == 10


def test_with_no_agency_available_the_case_is_flagged_for_the_supervisor():
    make_agency("Full", capacity=0)
    make_agency("Off", active=False)
    case = third_party_case()

    assert not Placement.objects.filter(case=case).exists()
    flag = CaseEvent.objects.get(case=case, kind=events.PLACEMENT_FAILED)
    assert flag.detail == {"reason": "no_agency_with_capacity"}
    assert list(unplaced_cases()) == [case]


def test_a_placed_case_is_not_listed_as_unplaced():
    make_agency("A")
    third_party_case()
    assert list(unplaced_cases()) == []


def test_recall_by_hand_then_place_elsewhere(legal_user):
    first = make_agency("A first")
    second = make_agency("B second")
    case = third_party_case()
    placement = current(case)
    assert placement.agency == first

    recalled, replaced = placement_recall(placement_id=placement.pk, user=legal_user, note="no contact", replace=True)

    assert recalled.recalled_at is not None
    assert recalled.recall_reason == RecallReason.MANUAL
    assert current(case).agency == second
    assert replaced.placed == {case.pk: second.pk}
    kinds = list(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))
    assert kinds.count(events.PLACED) == 2 and kinds.count(events.RECALLED) == 1
    recall_event = CaseEvent.objects.get(case=case, kind=events.RECALLED)
    assert recall_event.actor == legal_user
    assert recall_event.detail["note"] == "no contact"


def test_re_placement_never_returns_to_an_agency_that_had_the_case(supervisor):
    only = make_agency("Only")
    case = third_party_case()
    placement_recall(placement_id=current(case).pk, user=supervisor)
    with pytest.raises(ConflictError, match="No active agency"):
        case_replace(case_id=case.pk, user=supervisor)
    with pytest.raises(ConflictError, match="full or has had this case"):
        case_replace(case_id=case.pk, user=supervisor, agency_id=only.pk)
    assert not Placement.objects.filter(case=case, recalled_at__isnull=True).exists()


def test_recalling_twice_is_refused_and_changes_nothing(legal_user):
    make_agency("A")
    case = third_party_case()
    placement = current(case)
    placement_recall(placement_id=placement.pk, user=legal_user)
    count = CaseEvent.objects.count()
    with pytest.raises(ConflictError, match="already recalled"):
        placement_recall(placement_id=placement.pk, user=legal_user)
    assert CaseEvent.objects.count() == count


def test_a_placed_case_cannot_be_placed_twice(legal_user):
    make_agency("A")
    make_agency("B")
    case = third_party_case()
    with pytest.raises(ConflictError, match="recall it first"):
        case_replace(case_id=case.pk, user=legal_user)
    assert Placement.objects.filter(case=case).count() == 1


@pytest.mark.parametrize("role", ["collector", "agency", None])
def test_only_legal_staff_and_supervisors_recall(role):
    from tests.factories import UserFactory

    make_agency("A")
    case = third_party_case()
    user = UserFactory(username="someone", role=role)
    with pytest.raises(PermissionDenied):
        placement_recall(placement_id=current(case).pk, user=user)
    assert current(case).recalled_at is None


def test_amount_recovered_counts_payments_while_placed_and_commission_follows(legal_user):
    agency = make_agency("A", commission="15.00")
    case = third_party_case(due_dates=[DUE, DUE + dt.timedelta(days=30)])
    loan = case.loan
    placed_at = current(case).placed_at
    # Before placement: not the agency's doing.
    payment_record(
        external_id="P-before", loan=loan.external_id, amount="100.00", paid_at=placed_at - dt.timedelta(days=1)
    )
    payment_record(external_id="P-1", loan=loan.external_id, amount="200.00", paid_at=placed_at + dt.timedelta(days=3))
    payment_record(external_id="P-2", loan=loan.external_id, amount="50.00", paid_at=placed_at + dt.timedelta(days=5))

    listed = placements_list().get(case=case)
    assert listed.recovered_now == Decimal("250.00")
    [row] = [r for r in agency_performance() if r.agency == agency]
    assert (row.placed, row.current, row.recovered, row.commission) == (1, 1, Decimal("250.00"), Decimal("37.50"))
    assert row.recovery_rate == Decimal("12.5")  # 250 of 2000 placed

    recalled, _ = placement_recall(
        placement_id=current(case).pk, user=legal_user, now=placed_at + dt.timedelta(days=10)
    )
    assert (recalled.amount_recovered, recalled.commission_due) == (Decimal("250.00"), Decimal("37.50"))
    # A payment after the recall is not the agency's either.
    payment_record(external_id="P-3", loan=loan.external_id, amount="70.00", paid_at=placed_at + dt.timedelta(days=11))
    [row] = [r for r in agency_performance() if r.agency == agency]
    assert row.recovered == Decimal("250.00")


def test_automatic_recall_after_days_without_recovery_and_a_second_run_changes_nothing(settings):
    settings.AGENCY_RECALL_DAYS = 60
    first = make_agency("A first")
    second = make_agency("B second")
    quiet = third_party_case()
    paying = third_party_case(due_dates=[DUE, DUE + dt.timedelta(days=30)])
    placed_at = current(quiet).placed_at
    payment_record(
        external_id="P-recent", loan=paying.loan.external_id, amount="10.00", paid_at=placed_at + dt.timedelta(days=50)
    )
    assert current(paying).agency == second  # least-loaded: the second case went to B
    now = placed_at + dt.timedelta(days=61)

    summary = placements_recall_stale(now=now)
    assert (summary.recalled, summary.replaced, summary.unplaced) == (1, 1, 0)
    old = Placement.objects.get(case=quiet, agency=first)
    assert old.recall_reason == RecallReason.NO_RECOVERY
    assert current(quiet).agency == second
    assert current(paying).agency == second  # a payment 11 days ago: kept

    rows, events_count = Placement.objects.count(), CaseEvent.objects.count()
    again = placements_recall_stale(now=now)
    assert (again.recalled, again.replaced) == (0, 0)
    assert (Placement.objects.count(), CaseEvent.objects.count()) == (rows, events_count)


def test_the_periodic_task_runs_the_recall(settings):
    settings.AGENCY_RECALL_DAYS = 0
    make_agency("A")
    case = third_party_case()
    result = recall_stale_placements.apply().get()
    assert result["recalled"] == 1
    assert result["unplaced"] == 1  # the only agency had it already
    assert not Placement.objects.filter(case=case, recalled_at__isnull=True).exists()
    assert list(unplaced_cases()) == [case]


def test_a_resolved_case_leaves_its_agency():
    make_agency("A")
    case = third_party_case()
    placement = current(case)
    payment_record(
        external_id="P-all",
        loan=case.loan.external_id,
        amount="1000.00",
        paid_at=placement.placed_at + dt.timedelta(days=2),
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    placement.refresh_from_db()
    assert placement.recall_reason == RecallReason.RESOLVED
    assert placement.amount_recovered == Decimal("1000.00")


@pytest.mark.django_db(transaction=True)
def test_two_placers_at_once_never_exceed_capacity_nor_place_a_case_twice():
    agency = make_agency("A", capacity=3)
    cases = [third_party_case() for _ in range(6)]
    Placement.objects.all().delete()
    ids = [c.pk for c in cases]
    barrier = threading.Barrier(2)
    errors = []

    def place(batch):
        try:
            barrier.wait(timeout=10)
            cases_place(case_ids=batch)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=place, args=(ids[:4],)), threading.Thread(target=place, args=(ids[2:],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    placed = list(Placement.objects.filter(recalled_at__isnull=True).values_list("case_id", flat=True))
    assert len(placed) == agency.capacity
    assert len(set(placed)) == len(placed)


def test_the_dashboard_panel_shows_the_stored_figures_in_one_query(legal_user, django_assert_num_queries):
    from cases.dashboard import dashboard_panel, dashboard_panel_keys
    from cases.selectors_dashboard import Period

    agency = make_agency("A", commission="10.00")
    case = third_party_case()
    placed_at = current(case).placed_at
    payment_record(external_id="P-1", loan=case.loan.external_id, amount="300.00", paid_at=placed_at)
    placement_recall(placement_id=current(case).pk, user=legal_user, now=placed_at + dt.timedelta(days=1))
    assert "agencies" in dashboard_panel_keys()
    day = placed_at.date()
    with django_assert_num_queries(1):
        panel = dashboard_panel("agencies", Period(start=day, end=day, today=day))
    [row] = [r for r in panel.rows if r[0] == agency.name]
    assert row[1:5] == [1, 0, Decimal("1000.00"), Decimal("300.00")]
    assert panel.display_rows[0][5] == "30.0%"
    assert row[6] == Decimal("30.00")


def test_beat_runs_the_recall_task_daily_and_the_worker_knows_it():
    from django_celery_beat.models import PeriodicTask

    from collections_portal.celery import app

    entry = PeriodicTask.objects.get(task="legal.tasks.recall_stale_placements")
    assert entry.enabled and entry.crontab is not None
    app.loader.import_default_modules()
    assert "legal.tasks.recall_stale_placements" in app.tasks
