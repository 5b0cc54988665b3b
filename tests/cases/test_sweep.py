"""sweep_run: black-box acceptance tests of the escalation sweep (CONTRACT sections 3-5).

Time is controlled by the arguments: ``as_of`` is the business date and ``now`` the wall
clock the sweep stamps on what it writes (noon of the business day unless a test says
otherwise). Payments that must reach the sweep without ``payment_record``'s immediate
re-evaluation are written the way a ledger sync would: a Payment row plus its allocation.
"""

import datetime as dt
import itertools
import zoneinfo
from collections import Counter
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from cases.actions import register_stage_action, unregister_stage_action
from cases.models import (
    Case,
    CaseEvent,
    CaseStatus,
    EventKind,
    Hold,
    HoldReason,
    Installment,
    PaymentAllocation,
    PaymentPlan,
    PlanInstallment,
    PlanStatus,
    PromiseStatus,
    PromiseToPay,
    Stage,
    SweepRun,
)
from cases.models import Payment as PaymentRow
from cases.models.cases import LIVE_STATUSES
from cases.services import payment_record, sweep_run
from tests.factories import loan_with_schedule

pytestmark = pytest.mark.django_db

DUE = dt.date(2026, 3, 1)
AS_OF = dt.date(2026, 6, 1)
BUSINESS_TZ = zoneinfo.ZoneInfo(settings.TIME_ZONE)
_payment_numbers = itertools.count(1)


# --- helpers ---------------------------------------------------------------------------


def day(days_past_due: int) -> dt.date:
    """The business date on which a loan due on DUE is ``days_past_due`` days late."""
    return DUE + dt.timedelta(days=days_past_due)


def at(on: dt.date, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(on, dt.time(hour, minute), tzinfo=BUSINESS_TZ)


def sweep(on: dt.date, *, hour: int = 12, minute: int = 0, **kwargs):
    return sweep_run(as_of=on, now=at(on, hour, minute), **kwargs)


def grace_days() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT promise_grace_days FROM notifications_compliancepolicy WHERE id = 1")
        return cursor.fetchone()[0]


def ledger_payment(loan, amount: str, paid_at: dt.datetime) -> PaymentRow:
    """A payment as a ledger sync writes it: allocated oldest installment first, no evaluation."""
    payment = PaymentRow.objects.create(
        external_id=f"LEDGER-{next(_payment_numbers)}", loan=loan, amount=Decimal(amount), paid_at=paid_at
    )
    left = payment.amount
    for installment in Installment.objects.filter(loan=loan, paid_amount__lt=F("amount")).order_by("due_date"):
        share = min(installment.amount - installment.paid_amount, left)
        if share <= 0:
            break
        Installment.objects.filter(pk=installment.pk).update(paid_amount=F("paid_amount") + share)
        PaymentAllocation.objects.create(payment=payment, installment=installment, amount=share)
        left -= share
    return payment


def live_case(loan) -> Case:
    return Case.objects.select_related("stage", "pending_stage").get(loan=loan, status__in=LIVE_STATUSES)


def stage_path(case) -> list[tuple[str | None, str]]:
    return [(e.detail["from"], e.detail["to"]) for e in case.events.filter(kind=EventKind.STAGE_CHANGED)]


def kinds(case) -> list[str]:
    # The core's own events only: apps that carry out stage actions (legal's placements) add theirs.
    return list(case.events.filter(kind__in=EventKind.values).values_list("kind", flat=True))


def snapshot() -> dict:
    return {
        "cases": [
            {name: value for name, value in row.items() if name != "updated_at"}
            for row in Case.objects.order_by("pk").values()
        ],
        "events": CaseEvent.objects.count(),
        "holds": list(Hold.objects.order_by("pk").values()),
        "promises": list(PromiseToPay.objects.order_by("pk").values()),
        "plans": list(PaymentPlan.objects.order_by("pk").values()),
    }


def case_states() -> dict[int, tuple]:
    return {
        row[0]: row[1:]
        for row in Case.objects.values_list(
            "loan_id", "stage__code", "status", "pending_stage__code", "days_past_due", "repeat_count"
        )
    }


@pytest.fixture
def recorder():
    """Registers one handler for every action of every stage; yields what it received."""
    received: list[tuple[str, object]] = []

    def handler(entries, action):
        received.extend((action, entry) for entry in entries)

    actions = sorted({action for stage in Stage.objects.all() for action in stage.entry_actions})
    for action in actions:
        register_stage_action(action)(handler)
    try:
        yield received
    finally:
        for action in actions:
            unregister_stage_action(action, handler)


@pytest.fixture
def loan():
    return loan_with_schedule([DUE])


# --- placement by days past due -------------------------------------------------------


def test_it_places_every_loan_by_its_days_past_due_in_one_sweep():
    expected = {
        0: None,
        1: ("warning", CaseStatus.OPEN, None),
        3: ("warning", CaseStatus.OPEN, None),
        4: ("reminder", CaseStatus.OPEN, None),
        7: ("reminder", CaseStatus.OPEN, None),
        8: ("phone", CaseStatus.OPEN, None),
        30: ("phone", CaseStatus.OPEN, None),
        31: ("third_party", CaseStatus.OPEN, None),
        90: ("third_party", CaseStatus.OPEN, None),
        91: ("third_party", CaseStatus.AWAITING_APPROVAL, "litigation"),
        200: ("third_party", CaseStatus.AWAITING_APPROVAL, "litigation"),
    }
    loans = {dpd: loan_with_schedule([AS_OF - dt.timedelta(days=dpd)]) for dpd in expected}

    summary = sweep(AS_OF)

    for dpd, want in expected.items():
        cases = list(Case.objects.filter(loan=loans[dpd]).select_related("stage", "pending_stage"))
        if want is None:
            assert cases == [], f"DPD {dpd} should have no case"
            continue
        (case,) = cases
        got = (case.stage.code, case.status, case.pending_stage.code if case.pending_stage else None)
        assert got == want, f"DPD {dpd}"
        assert case.days_past_due == dpd
    assert summary.opened == 10
    assert summary.escalated == Counter({"warning": 2, "reminder": 2, "phone": 2, "third_party": 4})
    assert summary.awaiting_approval == 2
    assert summary.resolved == 0
    assert summary.changed is True
    assert CaseEvent.objects.filter(kind=EventKind.OPENED).count() == 10
    assert CaseEvent.objects.filter(kind=EventKind.AWAITING_APPROVAL).count() == 2
    assert set(CaseEvent.objects.filter(kind=EventKind.AWAITING_APPROVAL).values_list("detail__stage", flat=True)) == {
        "litigation"
    }


def test_it_sends_a_loan_first_seen_at_dpd_50_straight_to_third_party_running_only_its_actions(loan, recorder):
    summary = sweep(day(50))

    case = live_case(loan)
    assert case.stage.code == "third_party"
    assert case.status == CaseStatus.OPEN
    assert stage_path(case) == [(None, "third_party")]
    assert kinds(case) == [EventKind.OPENED, EventKind.STAGE_CHANGED]
    assert case.events.get(kind=EventKind.STAGE_CHANGED).detail["days_past_due"] == 50
    # The stage's actions, in the order its rule lists them, and nothing from the stages skipped.
    assert [(action, e.case_id, e.stage_code, e.previous_stage_code, e.repeat_number) for action, e in recorder] == [
        ("place_agency", case.pk, "third_party", None, 0),
        ("email", case.pk, "third_party", None, 0),
    ]
    assert recorder[0][1].entered_on == day(50)
    assert summary.escalated == Counter({"third_party": 1})
    assert summary.actions == Counter({"place_agency": 1, "email": 1})


def test_it_moves_one_stage_at_a_time_day_by_day_and_stops_before_litigation(loan, recorder):
    seen = {}
    for dpd in range(0, 96):
        sweep(day(dpd))
        case = Case.objects.select_related("stage", "pending_stage").filter(loan=loan).first()
        seen[dpd] = (
            case.stage.code if case else None,
            case.status if case else None,
            case.pending_stage.code if case and case.pending_stage else None,
        )

    def expected(dpd):
        if dpd == 0:
            return (None, None, None)
        if dpd >= 91:
            return ("third_party", CaseStatus.AWAITING_APPROVAL, "litigation")
        for threshold, code in ((31, "third_party"), (8, "phone"), (4, "reminder"), (1, "warning")):
            if dpd >= threshold:
                return (code, CaseStatus.OPEN, None)

    assert seen == {dpd: expected(dpd) for dpd in range(0, 96)}
    case = live_case(loan)
    changes = list(case.events.filter(kind=EventKind.STAGE_CHANGED))
    assert [(e.detail["from"], e.detail["to"], e.detail["days_past_due"]) for e in changes] == [
        (None, "warning", 1),
        ("warning", "reminder", 4),
        ("reminder", "phone", 8),
        ("phone", "third_party", 31),
    ]
    assert [e.at for e in changes] == [at(day(d)) for d in (1, 4, 8, 31)]
    waiting = list(case.events.filter(kind=EventKind.AWAITING_APPROVAL))
    assert [(e.detail["stage"], e.detail["days_past_due"]) for e in waiting] == [("litigation", 91)]
    assert Case.objects.filter(loan=loan).count() == 1
    # Every entered stage's actions ran once on entry; litigation's never ran.
    entries = Counter((e.stage_code, e.repeat_number) for _, e in recorder if e.repeat_number == 0)
    assert set(entries) == {("warning", 0), ("reminder", 0), ("phone", 0), ("third_party", 0)}
    assert not {"open_legal_matter", "demand_letter"} & {action for action, _ in recorder}


# --- payments -------------------------------------------------------------------------


def test_a_partial_payment_lowers_days_past_due_but_never_moves_the_case_back():
    loan = loan_with_schedule([DUE, DUE + dt.timedelta(days=20)])
    sweep(day(40))
    assert live_case(loan).stage.code == "third_party"

    payment_record(
        external_id="P-PART", loan=loan.external_id, amount="1000.00", paid_at=at(day(40), 15), as_of=day(40)
    )
    summary = sweep(day(41))

    case = live_case(loan)
    assert case.days_past_due == 21  # now counted from the second installment
    assert case.stage.code == "third_party"
    assert case.status == CaseStatus.OPEN
    assert stage_path(case) == [(None, "third_party")]
    assert summary.escalated == Counter()
    assert summary.resolved == 0


def test_a_payment_to_dpd_zero_resolves_the_case_on_the_next_sweep(loan):
    sweep(day(10))
    case = live_case(loan)
    ledger_payment(loan, "1000.00", at(day(10), 18))

    summary = sweep(day(11))

    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    assert case.days_past_due == 0
    assert case.resolved_at == at(day(11))
    assert case.stage.code == "phone"  # resolved where it stood, not moved back
    assert kinds(case)[-1] == EventKind.RESOLVED
    assert summary.resolved == 1
    assert summary.changed is True


def test_payment_record_resolves_a_case_at_once_when_dpd_reaches_zero(loan):
    sweep(day(10))
    case = live_case(loan)

    payment_record(
        external_id="P-FULL", loan=loan.external_id, amount="1000.00", paid_at=at(day(10), 18), as_of=day(10)
    )

    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    assert case.days_past_due == 0
    assert EventKind.PAYMENT in kinds(case)
    assert kinds(case)[-1] == EventKind.RESOLVED
    assert sweep(day(11)).resolved == 0


def test_a_later_missed_installment_opens_a_new_case():
    loan = loan_with_schedule([DUE, DUE + dt.timedelta(days=30)])
    sweep(day(5))
    first = live_case(loan)
    ledger_payment(loan, "1000.00", at(day(5), 18))
    sweep(day(6))
    first.refresh_from_db()
    assert first.status == CaseStatus.RESOLVED

    summary = sweep(day(32))  # the second installment is two days late

    second = live_case(loan)
    assert second.pk != first.pk
    assert second.days_past_due == 2
    assert second.stage.code == "warning"
    assert stage_path(second) == [(None, "warning")]
    assert summary.opened == 1
    assert Case.objects.filter(loan=loan).count() == 2
    assert Case.objects.filter(loan=loan, status__in=LIVE_STATUSES).count() == 1


# --- holds ----------------------------------------------------------------------------


def test_a_held_case_does_not_move_and_is_on_hold(loan, recorder):
    sweep(day(2))
    case = live_case(loan)
    Hold.objects.create(case=case, reason=HoldReason.DISPUTE, starts_at=at(day(2), 15))
    recorder.clear()

    first = sweep(day(10))
    second = sweep(day(40))

    case.refresh_from_db()
    assert case.status == CaseStatus.ON_HOLD
    assert case.stage.code == "warning"
    assert case.days_past_due == 40  # the metrics still follow the calendar
    assert stage_path(case) == [(None, "warning")]
    assert first.held == 1
    assert first.escalated == second.escalated == Counter()
    assert recorder == []
    assert Hold.objects.get().released_at is None


def test_a_hold_that_has_ended_is_released_and_the_case_moves_on(loan):
    sweep(day(2))
    case = live_case(loan)
    hold = Hold.objects.create(case=case, reason=HoldReason.BREATHING_SPACE, starts_at=at(day(2), 15), ends_on=day(9))

    on_last_day = sweep(day(9))  # the end date itself is still covered by the hold
    hold.refresh_from_db()
    case.refresh_from_db()
    assert hold.released_at is None
    assert case.status == CaseStatus.ON_HOLD
    assert on_last_day.holds_released == 0

    summary = sweep(day(10))

    hold.refresh_from_db()
    assert hold.released_at == at(day(10))
    released = case.events.get(kind=EventKind.HOLD_RELEASED)
    assert released.detail["hold"] == hold.pk
    assert summary.holds_released == 1
    case.refresh_from_db()
    if case.stage.code != "phone":  # the CONTRACT allows the move to wait for the next sweep
        sweep(day(10), hour=12, minute=15)
        case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    assert case.stage.code == "phone"
    assert stage_path(case) == [(None, "warning"), ("warning", "phone")]


# --- promises to pay ------------------------------------------------------------------


def promise(case, *, amount: str, due: dt.date, made_at: dt.datetime) -> PromiseToPay:
    Case.objects.filter(pk=case.pk).update(paused_until=due + dt.timedelta(days=grace_days()))
    return PromiseToPay.objects.create(case=case, amount=Decimal(amount), due_date=due, created_at=made_at)


def test_the_policy_grace_is_one_day():
    # The promise and plan tests below count days on this.
    assert grace_days() == 1


def test_a_kept_promise_is_marked_kept_and_the_case_stays_paused_until_its_date(loan):
    sweep(day(5))
    case = live_case(loan)
    kept = promise(case, amount="400.00", due=day(10), made_at=at(day(5), 14))
    ledger_payment(loan, "400.00", at(day(7), 9))

    summary = sweep(day(9))  # DPD 9 would mean phone, but the case is paused

    kept.refresh_from_db()
    assert kept.status == PromiseStatus.KEPT
    assert summary.promises_kept == 1
    assert case.events.filter(kind=EventKind.PROMISE_KEPT).count() == 1
    case.refresh_from_db()
    assert case.paused_until == day(11)
    assert case.stage.code == "reminder"

    assert sweep(day(11)).escalated == Counter()  # paused through date + grace
    assert live_case(loan).stage.code == "reminder"

    resumed = sweep(day(12))

    assert resumed.escalated == Counter({"phone": 1})
    assert live_case(loan).stage.code == "phone"
    assert case.events.filter(kind=EventKind.PROMISE_KEPT).count() == 1
    assert not case.events.filter(kind=EventKind.PROMISE_BROKEN).exists()


def test_a_broken_promise_clears_the_pause_and_escalation_resumes_in_the_same_sweep(loan):
    sweep(day(5))
    case = live_case(loan)
    broken = promise(case, amount="400.00", due=day(10), made_at=at(day(5), 14))
    ledger_payment(loan, "100.00", at(day(8), 9))  # not enough

    assert sweep(day(9)).escalated == Counter()
    assert sweep(day(11)).promises_broken == 0  # the grace day
    broken.refresh_from_db()
    assert broken.status == PromiseStatus.PENDING

    summary = sweep(day(12))

    broken.refresh_from_db()
    case.refresh_from_db()
    assert broken.status == PromiseStatus.BROKEN
    assert summary.promises_broken == 1
    assert case.events.filter(kind=EventKind.PROMISE_BROKEN).count() == 1
    assert case.paused_until is None
    assert case.stage.code == "phone"
    assert summary.escalated == Counter({"phone": 1})
    assert stage_path(case)[-1] == ("reminder", "phone")


def test_a_payment_after_the_promised_date_and_grace_does_not_keep_the_promise(loan):
    sweep(day(5))
    case = live_case(loan)
    late = promise(case, amount="400.00", due=day(10), made_at=at(day(5), 14))
    sweep(day(11))
    # The borrower pays on day 12, a day late, before the day's sweep has run.
    ledger_payment(loan, "400.00", at(day(12), 0, 1))

    summary = sweep(day(12))

    late.refresh_from_db()
    assert late.status == PromiseStatus.BROKEN
    assert summary.promises_broken == 1


def test_a_promise_kept_by_a_payment_that_cures_the_loan_is_on_the_timeline(loan):
    sweep(day(5))
    case = live_case(loan)
    kept = promise(case, amount="1000.00", due=day(10), made_at=at(day(5), 14))
    ledger_payment(loan, "1000.00", at(day(7), 9))

    summary = sweep(day(8))

    kept.refresh_from_db()
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    assert kept.status == PromiseStatus.KEPT
    assert case.events.filter(kind=EventKind.PROMISE_KEPT, detail__promise=kept.pk).count() == 1
    assert summary.promises_kept == 1


def test_a_cured_case_settles_its_pending_promise_on_the_timeline(loan):
    sweep(day(5))
    case = live_case(loan)
    # The borrower pays in the morning; the collector, not yet seeing it, records a promise at noon.
    ledger_payment(loan, "1000.00", at(day(6), 9))
    pending = promise(case, amount="1000.00", due=day(10), made_at=at(day(6), 12))

    summary = sweep(day(7))

    pending.refresh_from_db()
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    assert pending.status != PromiseStatus.PENDING
    settled = case.events.filter(
        kind__in=[EventKind.PROMISE_KEPT, EventKind.PROMISE_BROKEN], detail__promise=pending.pk
    )
    assert [e.kind for e in settled] == [f"promise_{pending.status}"]
    assert summary.promises_kept + summary.promises_broken == 1


# --- payment plans --------------------------------------------------------------------


def plan(case, *, total: str, waived: str = "0", installments, made_at: dt.datetime) -> PaymentPlan:
    created = PaymentPlan.objects.create(
        case=case,
        status=PlanStatus.ACTIVE,
        total_amount=Decimal(total),
        waived_amount=Decimal(waived),
        created_at=made_at,
    )
    PlanInstallment.objects.bulk_create(
        PlanInstallment(plan=created, sequence=n, due_date=due, amount=Decimal(amount))
        for n, (due, amount) in enumerate(installments, start=1)
    )
    return created


def test_an_active_plan_pauses_escalation_and_a_missed_installment_breaks_it(loan):
    sweep(day(5))
    case = live_case(loan)
    active = plan(
        case,
        total="600.00",
        waived="400.00",
        installments=[(day(10), "300.00"), (day(20), "300.00")],
        made_at=at(day(5), 14),
    )

    assert sweep(day(9)).escalated == Counter()  # DPD 9 would mean phone
    assert sweep(day(11)).plans_broken == 0  # the first installment's grace day
    active.refresh_from_db()
    assert active.status == PlanStatus.ACTIVE
    assert live_case(loan).stage.code == "reminder"

    summary = sweep(day(12))

    active.refresh_from_db()
    case.refresh_from_db()
    assert active.status == PlanStatus.BROKEN
    assert summary.plans_broken == 1
    assert case.events.filter(kind=EventKind.PLAN_BROKEN).count() == 1
    assert summary.escalated == Counter({"phone": 1})
    assert case.stage.code == "phone"


def test_a_plan_paid_on_schedule_stays_active_and_is_kept_when_payments_reach_its_total(loan):
    sweep(day(5))
    case = live_case(loan)
    kept = plan(
        case,
        total="600.00",
        waived="400.00",
        installments=[(day(10), "300.00"), (day(20), "300.00")],
        made_at=at(day(5), 14),
    )
    ledger_payment(loan, "300.00", at(day(9), 10))

    on_schedule = sweep(day(15))

    kept.refresh_from_db()
    assert kept.status == PlanStatus.ACTIVE
    assert on_schedule.plans_broken == on_schedule.plans_kept == 0
    assert live_case(loan).stage.code == "reminder"

    ledger_payment(loan, "300.00", at(day(19), 10))
    summary = sweep(day(20))

    kept.refresh_from_db()
    assert kept.status == PlanStatus.KEPT
    assert summary.plans_kept == 1
    assert case.events.filter(kind=EventKind.PLAN_KEPT).count() == 1
    assert not case.events.filter(kind=EventKind.PLAN_BROKEN).exists()


def test_a_plan_kept_by_payments_that_cure_the_loan_is_on_the_timeline(loan):
    sweep(day(5))
    case = live_case(loan)
    kept = plan(case, total="1000.00", installments=[(day(10), "500.00"), (day(20), "500.00")], made_at=at(day(5), 14))
    ledger_payment(loan, "500.00", at(day(9), 10))
    sweep(day(12))
    ledger_payment(loan, "500.00", at(day(19), 10))

    summary = sweep(day(20))

    kept.refresh_from_db()
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    assert kept.status == PlanStatus.KEPT
    assert case.events.filter(kind=EventKind.PLAN_KEPT, detail__plan=kept.pk).count() == 1
    assert summary.plans_kept == 1


def test_a_cured_case_settles_its_active_plan_on_the_timeline():
    loan = loan_with_schedule([DUE, DUE + dt.timedelta(days=60)])
    sweep(day(5))
    case = live_case(loan)
    # A plan for the whole balance; its first payment clears the overdue installment.
    active = plan(
        case, total="2000.00", installments=[(day(10), "1000.00"), (day(40), "1000.00")], made_at=at(day(5), 14)
    )
    ledger_payment(loan, "1000.00", at(day(9), 10))

    summary = sweep(day(10))

    active.refresh_from_db()
    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    assert active.status != PlanStatus.ACTIVE
    settled = case.events.filter(kind__in=[EventKind.PLAN_KEPT, EventKind.PLAN_BROKEN], detail__plan=active.pk)
    assert [e.kind for e in settled] == [f"plan_{active.status}"]
    assert summary.plans_kept + summary.plans_broken == 1


# --- repeats --------------------------------------------------------------------------


def test_reminder_repeats_fire_every_three_days_exactly_once_however_often_the_sweep_runs(recorder):
    # Keep cases in reminder long enough for several repeats.
    Stage.objects.filter(code="phone").update(entry_dpd=20)
    first = loan_with_schedule([DUE])
    second = loan_with_schedule([DUE + dt.timedelta(days=1)])  # enters reminder a day later
    repeats_by_day = {}

    for dpd in range(0, 16):
        for hour, minute in ((0, 5), (9, 0), (9, 15), (18, 30)):
            summary = sweep(day(dpd), hour=hour, minute=minute)
            repeats_by_day[dpd] = repeats_by_day.get(dpd, 0) + summary.repeats

    sms = [(e.case_id, e.stage_code, e.repeat_number, e.entered_on) for action, e in recorder if action == "sms"]
    assert len(sms) == len(set(sms))
    assert len({(case_id, number) for case_id, stage, number, _ in sms if stage == "reminder"}) == len(
        [s for s in sms if s[1] == "reminder"]
    )
    one, two = live_case(first).pk, live_case(second).pk
    reminder = sorted((case_id, number, on) for case_id, stage, number, on in sms if stage == "reminder")
    assert reminder == sorted(
        [
            (one, 0, day(4)),
            (one, 1, day(7)),
            (one, 2, day(10)),
            (one, 3, day(13)),
            (two, 0, day(5)),
            (two, 1, day(8)),
            (two, 2, day(11)),
            (two, 3, day(14)),
        ]
    )
    assert {dpd: n for dpd, n in repeats_by_day.items() if n} == {7: 1, 8: 1, 10: 1, 11: 1, 13: 1, 14: 1}
    # Each repeat sends the stage's messages again: email too, and nothing else.
    assert sorted(
        (e.case_id, e.repeat_number) for action, e in recorder if action == "email" and e.repeat_number
    ) == sorted([(one, 1), (one, 2), (one, 3), (two, 1), (two, 2), (two, 3)])
    assert {action for action, e in recorder if e.repeat_number} == {"sms", "email"}
    assert live_case(first).repeat_count == 3


# --- running twice, an older date, a dry run ------------------------------------------


def busy_portfolio():
    """Loans at many stages, plus a hold, an ended hold, a pending promise and an active plan."""
    loans = [loan_with_schedule([AS_OF - dt.timedelta(days=d)]) for d in (0, 2, 5, 10, 12, 40, 100, 150)]
    sweep(AS_OF - dt.timedelta(days=1))
    cases = {c.loan_id: c for c in Case.objects.all()}
    by_loan = [cases.get(loan.pk) for loan in loans]
    Hold.objects.create(case=by_loan[1], reason=HoldReason.DISPUTE)
    Hold.objects.create(case=by_loan[2], reason=HoldReason.LEGAL_REVIEW, ends_on=AS_OF - dt.timedelta(days=3))
    promise(by_loan[3], amount="300.00", due=AS_OF + dt.timedelta(days=5), made_at=at(AS_OF, 1))
    plan(by_loan[4], total="900.00", installments=[(AS_OF + dt.timedelta(days=7), "900.00")], made_at=at(AS_OF, 1))
    return loans


def test_the_same_sweep_twice_changes_nothing_the_second_time():
    busy_portfolio()
    first = sweep(AS_OF, hour=0, minute=5)
    assert first.changed is True
    assert first.holds_released == 1
    before = snapshot()

    second = sweep(AS_OF, hour=0, minute=20)

    assert snapshot() == before
    assert second.changed is False
    assert second.opened == second.resolved == second.repeats == second.holds_released == 0
    assert second.escalated == Counter()
    assert second.actions == Counter()


def test_an_earlier_business_date_changes_nothing_and_says_so():
    busy_portfolio()
    sweep(AS_OF)
    before = snapshot()

    summary = sweep(AS_OF - dt.timedelta(days=2))

    assert snapshot() == before
    assert summary.changed is False
    assert summary.opened == 0
    assert (AS_OF - dt.timedelta(days=2)).isoformat() in summary.skipped
    assert AS_OF.isoformat() in summary.skipped
    assert SweepRun.objects.filter(as_of=AS_OF - dt.timedelta(days=2)).count() == 0


def test_a_dry_run_changes_nothing_but_reports_what_would_change():
    for dpd in (0, 3, 12, 100):
        loan_with_schedule([AS_OF - dt.timedelta(days=dpd)])

    summary = sweep(AS_OF, dry_run=True)

    assert summary.dry_run is True
    assert summary.opened == 3
    assert summary.escalated == Counter({"warning": 1, "phone": 1, "third_party": 1})
    assert summary.awaiting_approval == 1
    assert summary.changed is True
    assert not Case.objects.exists()
    assert not CaseEvent.objects.exists()
    assert not SweepRun.objects.exists()


def test_a_dry_run_after_a_real_sweep_reports_the_next_days_moves_and_keeps_the_database():
    busy_portfolio()
    sweep(AS_OF)
    before = snapshot()
    runs = SweepRun.objects.count()
    later = AS_OF + dt.timedelta(days=30)

    summary = sweep(later, dry_run=True)

    assert snapshot() == before
    assert SweepRun.objects.count() == runs
    assert summary.changed is True
    assert summary.opened == 1  # the loan that was at DPD 0
    assert sum(summary.escalated.values()) > 0


def test_a_dry_run_reports_the_moves_that_an_ended_hold_and_a_broken_plan_unlock():
    held = loan_with_schedule([DUE])
    planned = loan_with_schedule([DUE - dt.timedelta(days=3)])
    sweep(day(2))
    Hold.objects.create(case=live_case(held), reason=HoldReason.DISPUTE, starts_at=at(day(2), 15), ends_on=day(9))
    plan(live_case(planned), total="600.00", installments=[(day(10), "600.00")], made_at=at(day(2), 15))
    sweep(day(9))
    before = snapshot()

    dry = sweep(day(12), dry_run=True)

    assert snapshot() == before
    assert (dry.holds_released, dry.plans_broken) == (1, 1)
    real = sweep(day(12))
    assert real.escalated == Counter({"phone": 2})
    assert dry.escalated == real.escalated


# --- batching -------------------------------------------------------------------------


def in_savepoint(**kwargs):
    """Sweep inside a savepoint that is rolled back; returns the summary and the case states."""
    with transaction.atomic():
        summary = sweep(AS_OF, **kwargs)
        states = case_states()
        transaction.set_rollback(True)
    return summary, states


def test_small_batches_end_exactly_as_one_big_batch():
    for n in range(40):
        loan_with_schedule([AS_OF - dt.timedelta(days=(n * 7) % 130)])

    small, small_states = in_savepoint(batch_size=7)
    assert not Case.objects.exists()
    big, big_states = in_savepoint(batch_size=1000)

    assert small_states == big_states
    assert len(big_states) == sum(1 for n in range(40) if (n * 7) % 130 >= 1)
    assert (small.opened, small.escalated, small.awaiting_approval) == (
        big.opened,
        big.escalated,
        big.awaiting_approval,
    )
    assert small.batches == 6
    assert big.batches == 1


def test_the_statement_count_grows_with_batches_not_with_cases():
    # The same mix of days past due in every batch, so every batch enters the same stages.
    pattern = (1, 2, 5, 6, 9, 20, 35, 60, 95, 150)

    def make(count):
        for n in range(count):
            loan_with_schedule([AS_OF - dt.timedelta(days=pattern[n % len(pattern)])])

    make(40)
    with CaptureQueriesContext(connection) as forty_queries:
        forty, _ = in_savepoint(batch_size=10)
    one_batch, _ = in_savepoint(batch_size=1000)
    make(40)
    with CaptureQueriesContext(connection) as eighty_queries:
        eighty, _ = in_savepoint(batch_size=20)

    assert forty.batches == eighty.batches == 4
    assert eighty.opened == 2 * forty.opened == 80
    assert eighty.statements == forty.statements
    assert forty.statements > one_batch.statements
    # Everything the sweep sends to the database, stage-action handlers included, stays flat.
    assert len(eighty_queries.captured_queries) == len(forty_queries.captured_queries)


# --- stage rules changed by an admin --------------------------------------------------


def test_a_deactivated_stage_is_skipped_by_the_next_sweep():
    waiting = loan_with_schedule([DUE])
    sweep(day(3))
    Stage.objects.filter(code="reminder").update(active=False)
    fresh = loan_with_schedule([day(1)])  # 5 days late on day 6

    summary = sweep(day(6))

    assert live_case(waiting).stage.code == "warning"
    assert live_case(fresh).stage.code == "warning"
    assert "reminder" not in summary.escalated

    sweep(day(8))
    case = live_case(waiting)
    assert case.stage.code == "phone"
    assert stage_path(case) == [(None, "warning"), ("warning", "phone")]


def test_a_changed_threshold_is_honoured_by_the_next_sweep(loan):
    sweep(day(5))
    Stage.objects.filter(code="phone").update(entry_dpd=15)

    sweep(day(10))
    assert live_case(loan).stage.code == "reminder"
    sweep(day(14))
    assert live_case(loan).stage.code == "reminder"

    summary = sweep(day(15))

    assert live_case(loan).stage.code == "phone"
    assert summary.escalated == Counter({"phone": 1})
    assert live_case(loan).events.filter(kind=EventKind.STAGE_CHANGED).last().detail == {
        "from": "reminder",
        "to": "phone",
        "days_past_due": 15,
    }


def test_a_case_sitting_in_a_stage_that_is_deactivated_keeps_moving_forward(loan):
    sweep(day(5))
    assert live_case(loan).stage.code == "reminder"
    Stage.objects.filter(code="reminder").update(active=False)

    summary = sweep(day(9))

    case = live_case(loan)
    assert case.stage.code == "phone"
    assert stage_path(case)[-1] == ("reminder", "phone")
    assert summary.escalated == Counter({"phone": 1})
