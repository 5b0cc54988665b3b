"""The sweep's batch mechanics: new cases written at their final place in one statement,
statements bounded to the batch's loan range, events from both write paths, the
temporary balance table across committed batches, and a fixed statement count per batch.

The stage-action handlers of other apps are switched off here (the ``recorded`` fixture)
so that each timeline holds exactly what the sweep itself wrote.
"""

import datetime as dt
import zoneinfo
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.actions import register_stage_action, registered_actions, unregister_stage_action
from cases.models import Case, CaseEvent, CaseStatus, EventKind, Installment, Stage
from cases.services.sweep import SweepSummary, priority_sql, sweep_batch, sweep_run
from tests.factories import UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db

DUE = dt.date(2026, 3, 1)
BUSINESS_TZ = zoneinfo.ZoneInfo(settings.TIME_ZONE)


def day(days_past_due: int) -> dt.date:
    return DUE + dt.timedelta(days=days_past_due)


def at(on: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(on, dt.time(hour), tzinfo=BUSINESS_TZ)


def timeline(case: Case) -> list[tuple[str, dict]]:
    return [(e.kind, e.detail) for e in case.events.order_by("at", "id")]


@pytest.fixture
def recorded():
    """Every registered stage-action handler replaced by one recorder; yields what it got."""
    received: list[tuple[str, object]] = []

    def recorder(entries, action):
        received.extend((action, entry) for entry in entries)

    saved = registered_actions()
    for action, handlers in saved.items():
        for handler in handlers:
            unregister_stage_action(action, handler)
    actions = sorted({action for stage in Stage.objects.all() for action in stage.entry_actions})
    for action in actions:
        register_stage_action(action)(recorder)
    try:
        yield received
    finally:
        for action in actions:
            unregister_stage_action(action, recorder)
        for action, handlers in saved.items():
            for handler in handlers:
                register_stage_action(action)(handler)


# --- new cases --------------------------------------------------------------------------


def test_a_case_first_seen_at_dpd_50_gets_one_opened_and_one_stage_event_and_its_final_priority(recorded):
    loan = loan_with_schedule([DUE])
    # The sweep runs three days after the business date's clock started: the priority's
    # "days since last contact" part counts from the opening, as for any other case.
    now = at(day(47))

    summary = sweep_run(as_of=day(50), now=now)

    case = Case.objects.select_related("stage").get(loan=loan)
    assert (case.stage.code, case.status, case.pending_stage_id) == ("third_party", CaseStatus.OPEN, None)
    assert timeline(case) == [
        (EventKind.OPENED, {"days_past_due": 50}),
        (EventKind.STAGE_CHANGED, {"from": None, "to": "third_party", "days_past_due": 50}),
    ]
    assert set(case.events.values_list("at", "actor_id")) == {(now, None)}
    # 50 days past due + 1000.00 outstanding / 100 + no broken promise + 3 days since opening.
    assert case.priority == 50 + 10 + 0 + 3
    assert (case.opened_at, case.stage_entered_at, case.stage_entered_on, case.repeat_count) == (
        now,
        now,
        day(50),
        0,
    )
    assert (summary.opened, summary.escalated, summary.awaiting_approval) == (1, Counter({"third_party": 1}), 0)
    assert [(action, e.stage_code, e.previous_stage_code) for action, e in recorded] == [
        ("place_agency", "third_party", None),
        ("email", "third_party", None),
    ]


def test_a_case_first_seen_at_dpd_95_enters_third_party_and_waits_for_litigation_approval(recorded):
    loan = loan_with_schedule([DUE])
    now = at(day(95))

    summary = sweep_run(as_of=day(95), now=now)

    case = Case.objects.select_related("stage", "pending_stage").get(loan=loan)
    assert (case.stage.code, case.status, case.pending_stage.code) == (
        "third_party",
        CaseStatus.AWAITING_APPROVAL,
        "litigation",
    )
    assert timeline(case) == [
        (EventKind.OPENED, {"days_past_due": 95}),
        (EventKind.STAGE_CHANGED, {"from": None, "to": "third_party", "days_past_due": 95}),
        (EventKind.AWAITING_APPROVAL, {"stage": "litigation", "days_past_due": 95}),
    ]
    assert case.priority == 95 + 10
    assert (case.approval_requested_at, case.approval_requested_by_id) == (now, None)
    assert (summary.opened, summary.escalated, summary.awaiting_approval) == (1, Counter({"third_party": 1}), 1)
    # Third party's actions ran on entry; litigation's wait for the approval.
    assert {action for action, _ in recorded} == {"place_agency", "email"}


def test_when_the_first_stage_requires_approval_a_new_case_waits_for_it_without_a_stage(recorded):
    Stage.objects.filter(code="warning").update(requires_approval=True)
    loan = loan_with_schedule([DUE])

    summary = sweep_run(as_of=day(40), now=at(day(40)))

    case = Case.objects.select_related("pending_stage").get(loan=loan)
    assert (case.stage_id, case.status, case.pending_stage.code) == (None, CaseStatus.AWAITING_APPROVAL, "warning")
    assert timeline(case) == [
        (EventKind.OPENED, {"days_past_due": 40}),
        (EventKind.AWAITING_APPROVAL, {"stage": "warning", "days_past_due": 40}),
    ]
    assert (summary.opened, summary.escalated, summary.awaiting_approval) == (1, Counter(), 1)
    assert recorded == []


def test_a_new_cases_priority_is_what_the_refresh_would_compute(recorded):
    loans = {dpd: loan_with_schedule([day(0) - dt.timedelta(days=dpd)], amount="12345.67") for dpd in (1, 7, 50, 95)}
    loans[200] = loan_with_schedule([day(0) - dt.timedelta(days=200)], amount="45000.00")
    sweep_run(as_of=day(0), now=at(day(-12)))

    general = priority_sql(days_past_due="cases_case.days_past_due", outstanding="cases_case.outstanding")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT loan_id, priority, {general} FROM cases_case",
            {"as_of": day(0), "now": at(day(-12)), "tz": settings.TIME_ZONE},
        )
        rows = cursor.fetchall()
    assert len(rows) == 5
    assert [(stored, computed) for _, stored, computed in rows if stored != computed] == []
    by_loan = {loan_id: stored for loan_id, stored, _ in rows}
    assert by_loan[loans[200].pk] == 180 + 300 + 12
    # Hence the next sweep of the same day finds nothing to refresh.
    assert sweep_run(as_of=day(0), now=at(day(-12), 13)).changed is False


# --- events and actors ------------------------------------------------------------------


def test_events_carry_the_actor_on_both_write_paths(recorded):
    clerk = UserFactory()
    loan = loan_with_schedule([DUE])
    sweep_batch(as_of=day(5), lo=loan.pk, hi=loan.pk, now=at(day(5)), actor=clerk)  # opens: written by SQL
    Installment.objects.filter(loan=loan).update(paid_amount=1000)

    summary = sweep_batch(as_of=day(6), lo=loan.pk, hi=loan.pk, now=at(day(6)), actor=clerk)  # resolves

    case = Case.objects.get(loan=loan)
    assert case.status == CaseStatus.RESOLVED
    assert summary.resolved == 1
    assert [(kind, actor) for kind, actor in case.events.order_by("id").values_list("kind", "actor_id")] == [
        (EventKind.OPENED, clerk.pk),
        (EventKind.STAGE_CHANGED, clerk.pk),
        (EventKind.RESOLVED, clerk.pk),
    ]


# --- bounds -----------------------------------------------------------------------------


def test_a_batch_touches_only_the_cases_of_its_own_loan_range(recorded):
    inside, outside = loan_with_schedule([DUE]), loan_with_schedule([DUE])
    sweep_run(as_of=day(2), now=at(day(2)))
    # Both loans get further behind; only the batch holding ``inside`` runs.
    summary = sweep_batch(as_of=day(9), lo=inside.pk, hi=inside.pk, now=at(day(9)))

    states = dict(Case.objects.values_list("loan_id", "days_past_due"))
    assert states == {inside.pk: 9, outside.pk: 2}
    assert summary.escalated == Counter({"phone": 1})
    assert CaseEvent.objects.filter(case__loan=outside).count() == 2


def test_an_empty_range_opens_nothing_and_writes_no_event(recorded):
    loan = loan_with_schedule([DUE])

    summary = sweep_batch(as_of=day(50), lo=loan.pk + 1000, hi=loan.pk + 2000, now=at(day(50)))

    assert summary == SweepSummary(as_of=day(50), batches=1, statements=summary.statements)
    assert not Case.objects.exists()
    assert not CaseEvent.objects.exists()


# --- statements per batch ---------------------------------------------------------------


def test_a_batch_sends_a_fixed_number_of_statements_however_many_cases_it_opens(recorded):
    def batch_statements(count: int) -> tuple[int, int]:
        loans = [loan_with_schedule([day(0) - dt.timedelta(days=3 + n % 120)]) for n in range(count)]
        with CaptureQueriesContext(connection) as queries:
            summary = sweep_batch(as_of=day(0), lo=loans[0].pk, hi=loans[-1].pk, now=at(day(0)))
        assert summary.opened == count
        return summary.statements, len(queries.captured_queries)

    few, many = batch_statements(3), batch_statements(60)

    assert few == many
    # Once everything is open, one batch over all of it: the same statements, nothing written
    # (the new cases' events went out with the INSERT that opened them).
    again = sweep_batch(as_of=day(0), lo=1, hi=10_000_000, now=at(day(0), 13))
    assert again.changed is False
    assert again.statements == few[0]


@pytest.mark.django_db(transaction=True)
def test_committed_batches_each_get_a_fresh_balance_table(recorded):
    # Outside a test transaction every batch commits, and the temporary table goes with the
    # commit; the next batch must be able to create it again.
    loans = [loan_with_schedule([DUE - dt.timedelta(days=n)]) for n in range(5)]

    summary = sweep_run(as_of=day(10), now=at(day(10)), batch_size=2)

    assert summary.batches == 3
    assert summary.opened == 5
    assert Case.objects.filter(loan__in=loans).count() == 5
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.sweep_balance')")
        assert cursor.fetchone() == (None,)
