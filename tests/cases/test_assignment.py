"""Assignment at the phone stage, reassignment and rebalancing."""

import datetime as dt

import pytest
from django.utils import timezone

from cases.exceptions import ConflictError, PermissionDenied
from cases.models import Case, CaseEvent, EventKind
from cases.services import sweep_run
from cases.services.assignment import cases_reassign, collector_deactivate
from tests.factories import UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db
DUE = dt.date(2026, 1, 1)
PHONE_DAY = DUE + dt.timedelta(days=10)


def loans_at_phone(n):
    return [loan_with_schedule([DUE]) for _ in range(n)]


def test_phone_stage_cases_go_to_the_least_loaded_collector_and_get_a_call_task():
    busy = UserFactory(username="busy", role="collector")
    idle = UserFactory(username="idle", role="collector")
    UserFactory(username="gone", role="collector", is_active=False)
    # busy already holds two live cases
    for loan in loans_at_phone(2):
        sweep_run(as_of=PHONE_DAY)
        Case.objects.filter(loan=loan).update(assigned_to=busy)
    Case.objects.update(assigned_to=busy)
    loans_at_phone(4)

    sweep_run(as_of=PHONE_DAY + dt.timedelta(days=1))

    loads = {u: Case.objects.filter(assigned_to__username=u).count() for u in ("busy", "idle", "gone")}
    assert loads == {"busy": 3, "idle": 3, "gone": 0}
    assert not Case.objects.filter(assigned_to__isnull=True).exists()
    assert set(Case.objects.values_list("next_action_on", flat=True)) <= {PHONE_DAY, PHONE_DAY + dt.timedelta(days=1)}
    assert CaseEvent.objects.filter(kind=EventKind.ASSIGNED).count() >= 4
    assert idle.pk in set(Case.objects.values_list("assigned_to", flat=True))


def test_ties_go_to_whoever_waited_longest():
    early = UserFactory(username="early", role="collector")
    late = UserFactory(username="late", role="collector")
    early.last_assigned_at = timezone.now() - dt.timedelta(days=2)
    late.last_assigned_at = timezone.now() - dt.timedelta(hours=1)
    early.save()
    late.save()
    loans_at_phone(1)

    sweep_run(as_of=PHONE_DAY)

    assert Case.objects.get().assigned_to == early


def test_a_supervisor_reassigns_in_bulk_and_a_collector_cannot():
    supervisor = UserFactory(username="sup", role="supervisor")
    a = UserFactory(username="a", role="collector")
    b = UserFactory(username="b", role="collector")
    loans_at_phone(3)
    sweep_run(as_of=PHONE_DAY)
    ids = list(Case.objects.values_list("pk", flat=True))

    with pytest.raises(PermissionDenied):
        cases_reassign(case_ids=ids, to_user=b, by=a)

    already_with_b = Case.objects.filter(assigned_to=b).count()
    moved = cases_reassign(case_ids=ids, to_user=b, by=supervisor)
    assert Case.objects.filter(assigned_to=b).count() == 3
    assert moved == 3 - already_with_b
    assert CaseEvent.objects.filter(kind=EventKind.ASSIGNED, actor=supervisor).count() == moved
    assert cases_reassign(case_ids=ids, to_user=b, by=supervisor) == 0  # nothing left to move
    with pytest.raises(ConflictError):
        cases_reassign(case_ids=ids, to_user=supervisor, by=supervisor)


def test_a_deactivated_collectors_cases_are_shared_out_again():
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    leaving = UserFactory(username="leaving", role="collector")
    loans_at_phone(4)
    sweep_run(as_of=PHONE_DAY)
    assert Case.objects.filter(assigned_to=leaving).count() == 4
    stay1 = UserFactory(username="stay1", role="collector")
    stay2 = UserFactory(username="stay2", role="collector")

    moved = collector_deactivate(user=leaving, by=admin)

    assert moved == 4
    assert Case.objects.filter(assigned_to=stay1).count() == 2
    assert Case.objects.filter(assigned_to=stay2).count() == 2


def test_the_sweep_rebalances_collectors_deactivated_in_admin():
    leaving = UserFactory(username="leaving", role="collector")
    loans_at_phone(2)
    sweep_run(as_of=PHONE_DAY)
    stay = UserFactory(username="stay", role="collector")
    leaving.is_active = False
    leaving.save()

    summary = sweep_run(as_of=PHONE_DAY + dt.timedelta(days=1))

    assert summary.reassigned == 2
    assert Case.objects.filter(assigned_to=stay).count() == 2
    assert sweep_run(as_of=PHONE_DAY + dt.timedelta(days=1)).reassigned == 0
