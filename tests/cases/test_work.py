"""Case-work services (cases/services/work.py): contacts and call caps, promises, payment plans,
holds, notes and revealing personal data. Each rule has a happy path, its refusals, and a
check that a refusal writes nothing.

The wall clock is frozen with time-machine at NOW (a Tuesday, 10:00 in Shanghai) unless a
test moves it; the services take ``now`` from ``timezone.now()``.
"""

import datetime as dt
import threading
import time
import zoneinfo
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import translation

from cases.exceptions import CallCapReached, ConflictError, PermissionDenied
from cases.models import (
    Case,
    CaseEvent,
    CaseStatus,
    ContactAttempt,
    EventKind,
    Hold,
    Note,
    PaymentPlan,
    PlanInstallment,
    PlanStatus,
    PromiseStatus,
    PromiseToPay,
)
from cases.models.audit import BorrowerView
from cases.models.cases import LIVE_STATUSES
from cases.selectors import call_next_allowed_at, cases_for_user, register_case_visibility
from cases.services import (
    borrower_reveal,
    contact_log,
    hold_place,
    hold_release,
    mask_id,
    mask_phone,
    note_add,
    plan_approve,
    plan_propose,
    promise_cancel,
    promise_create,
    sweep_run,
)
from tests.factories import BorrowerFactory, CaseFactory, LoanFactory, UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 6, 9, 10, 0, tzinfo=SHANGHAI)
TODAY = NOW.date()


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)
    return time_machine


# --- the cast --------------------------------------------------------------------------


@pytest.fixture
def collector():
    return UserFactory(username="collector1", role="collector")


@pytest.fixture
def other_collector():
    return UserFactory(username="collector2", role="collector")


@pytest.fixture
def supervisor():
    return UserFactory(username="supervisor1", role="supervisor")


@pytest.fixture
def other_supervisor():
    return UserFactory(username="supervisor2", role="supervisor")


@pytest.fixture
def legal():
    return UserFactory(username="legal1", role="legal")


@pytest.fixture
def outsider():
    return UserFactory(username="outsider")


@pytest.fixture
def case(collector):
    borrower = BorrowerFactory(phone="+8613812345678", national_id="110101199003074512")
    return CaseFactory(
        loan=LoanFactory(borrower=borrower),
        assigned_to=collector,
        outstanding=Decimal("1000.00"),
        overdue_amount=Decimal("1000.00"),
        days_past_due=9,
    )


def snapshot() -> dict:
    """Everything the services write, to show that a refusal wrote nothing."""
    return {
        "cases": [{k: v for k, v in row.items() if k != "updated_at"} for row in Case.objects.order_by("pk").values()],
        "events": list(CaseEvent.objects.order_by("pk").values_list("pk", flat=True)),
        "contacts": list(ContactAttempt.objects.order_by("pk").values()),
        "promises": list(PromiseToPay.objects.order_by("pk").values()),
        "plans": list(PaymentPlan.objects.order_by("pk").values()),
        "plan_installments": PlanInstallment.objects.count(),
        "holds": list(Hold.objects.order_by("pk").values()),
        "notes": Note.objects.count(),
        "borrower_views": BorrowerView.objects.count(),
    }


@pytest.fixture
def unchanged():
    """Use as ``with unchanged(): ...`` around a call that must be refused without writing."""

    class Unchanged:
        def __enter__(self):
            self.before = snapshot()

        def __exit__(self, *exc):
            assert snapshot() == self.before
            return False

    return Unchanged


def events(case, kind):
    return list(CaseEvent.objects.filter(case=case, kind=kind).order_by("pk"))


# --- contacts and call caps ------------------------------------------------------------


def test_it_logs_a_connected_call_with_its_event_and_the_last_contact_time(case, collector):
    attempt = contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact", note=" asked ")

    assert (attempt.channel, attempt.outcome, attempt.connected, attempt.note) == (
        "phone",
        "right_party_contact",
        True,
        "asked",
    )
    assert attempt.collector == collector
    assert attempt.attempted_at == NOW
    case.refresh_from_db()
    assert case.last_contact_at == NOW
    [event] = events(case, EventKind.CONTACT)
    assert event.actor == collector
    assert event.detail == {
        "attempt": attempt.pk,
        "channel": "phone",
        "outcome": "right_party_contact",
        "connected": True,
    }


@pytest.mark.parametrize(
    ("outcome", "connected"),
    [
        ("right_party_contact", True),
        ("promise_to_pay", True),
        ("third_party", True),
        ("refused", True),
        ("dispute", True),
        ("callback_requested", True),
        ("no_answer", False),
        ("busy", False),
        ("voicemail", False),
        ("wrong_number", False),
    ],
)
def test_connected_means_someone_concerned_answered(case, collector, outcome, connected):
    assert contact_log(case=case, by=collector, channel="phone", outcome=outcome).connected is connected


def test_it_refuses_an_unknown_channel_and_outcome_naming_both_fields(case, collector, unchanged):
    with unchanged(), pytest.raises(ValidationError) as caught:
        contact_log(case=case, by=collector, channel="pigeon", outcome="maybe")

    assert set(caught.value.message_dict) == {"channel", "outcome"}
    assert "phone" in caught.value.message_dict["channel"][0]


def test_a_collector_may_not_log_contacts_on_another_collectors_case(case, other_collector, unchanged):
    with unchanged(), pytest.raises(PermissionDenied):
        contact_log(case=case, by=other_collector, channel="phone", outcome="no_answer")


@pytest.mark.parametrize("who", ["legal", "outsider"])
def test_users_who_do_not_work_cases_may_not_log_contacts(case, who, request, unchanged):
    with unchanged(), pytest.raises(PermissionDenied):
        contact_log(case=case, by=request.getfixturevalue(who), channel="phone", outcome="no_answer")


def test_a_supervisor_may_log_contacts_on_any_case(case, supervisor):
    assert contact_log(case=case, by=supervisor, channel="sms", outcome="no_answer").collector == supervisor


def test_a_resolved_case_takes_no_more_contacts(case, collector, unchanged):
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.RESOLVED)

    with unchanged(), pytest.raises(ConflictError, match="no longer be worked"):
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")


def test_the_eighth_call_attempt_in_seven_days_is_refused_until_the_oldest_ages_out(case, collector, frozen):
    first = NOW
    for day in range(7):  # one unanswered call a day, 7 in all
        frozen.move_to(first + dt.timedelta(days=day), tick=False)
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")
    frozen.move_to(first + dt.timedelta(days=6, hours=5), tick=False)
    assert call_next_allowed_at(case=case) == first + dt.timedelta(days=7)
    before = snapshot()

    with pytest.raises(CallCapReached) as caught:
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")

    assert caught.value.next_allowed_at == first + dt.timedelta(days=7)
    assert "7 call attempts per case in 7 days" in caught.value.message
    assert "2026-06-16 10:00" in caught.value.message  # said in the business time zone
    assert isinstance(caught.value, ConflictError)
    assert snapshot() == before

    frozen.move_to(first + dt.timedelta(days=7, seconds=-1), tick=False)
    with pytest.raises(CallCapReached):
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")

    frozen.move_to(first + dt.timedelta(days=7), tick=False)  # the first call leaves the window
    assert call_next_allowed_at(case=case) is None
    assert contact_log(case=case, by=collector, channel="phone", outcome="no_answer").pk


def test_the_fourth_connected_call_of_the_day_is_refused_until_the_borrowers_midnight(case, collector, frozen):
    for _ in range(2):
        contact_log(case=case, by=collector, channel="phone", outcome="callback_requested")
    contact_log(case=case, by=collector, channel="phone", outcome="no_answer")  # not connected: not counted
    assert call_next_allowed_at(case=case) is None
    contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact")  # third connected
    midnight = dt.datetime(2026, 6, 10, 0, 0, tzinfo=SHANGHAI)

    # Once the day's connected calls are used up no call is placed at all: any call may connect.
    with pytest.raises(CallCapReached) as caught:
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")

    assert caught.value.next_allowed_at == midnight
    assert "3 connected calls per case per day" in caught.value.message
    assert ContactAttempt.objects.filter(case=case).count() == 4

    frozen.move_to(midnight - dt.timedelta(seconds=1), tick=False)
    assert call_next_allowed_at(case=case) == midnight
    frozen.move_to(midnight, tick=False)
    assert call_next_allowed_at(case=case) is None
    assert contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact").connected


def test_the_connected_call_day_is_the_borrowers_own_day(collector, frozen):
    borrower = BorrowerFactory(timezone="America/New_York")
    case = CaseFactory(loan=LoanFactory(borrower=borrower), assigned_to=collector)
    # 10:00 in Shanghai on 9 June is 22:00 on 8 June in New York.
    for _ in range(3):
        contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact")

    assert call_next_allowed_at(case=case) == dt.datetime(2026, 6, 9, 0, 0, tzinfo=NEW_YORK)


def test_other_channels_are_not_held_to_the_call_caps(case, collector):
    for _ in range(3):
        contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact")

    for _ in range(10):
        contact_log(case=case, by=collector, channel="sms", outcome="right_party_contact")

    assert ContactAttempt.objects.filter(case=case, channel="sms").count() == 10
    assert call_next_allowed_at(case=case) is not None


def test_two_calls_logged_at_once_against_the_last_free_slot_let_only_one_through(case, collector, frozen):
    # The second call waits for the first one's row lock and then counts it.
    for _ in range(2):
        contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact")
    with transaction.atomic():
        contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact")
        assert call_next_allowed_at(case=case) is not None
    with pytest.raises(CallCapReached):
        contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact")


def test_the_call_cap_refusal_is_said_in_chinese_for_a_chinese_session(case, collector):
    for _ in range(3):
        contact_log(case=case, by=collector, channel="phone", outcome="right_party_contact")

    with translation.override("zh-hans"), pytest.raises(CallCapReached) as caught:
        contact_log(case=case, by=collector, channel="phone", outcome="no_answer")

    assert caught.value.message.startswith("已达电话催收上限")
    assert "每天最多接通 3 次" in caught.value.message
    assert "2026-06-10 00:00" in caught.value.message


def test_the_next_allowed_call_costs_two_queries_however_many_calls_were_logged(
    case, collector, django_assert_num_queries
):
    ContactAttempt.objects.bulk_create(
        ContactAttempt(case=case, channel="phone", outcome="no_answer", attempted_at=NOW - dt.timedelta(hours=h))
        for h in range(1, 7)
    )
    case = Case.objects.select_related("loan__borrower").get(pk=case.pk)

    with django_assert_num_queries(2):  # the compliance policy and the week's calls
        assert call_next_allowed_at(case=case) is None


# --- promises to pay -------------------------------------------------------------------


def test_a_promise_pauses_the_case_through_its_date_plus_grace(case, collector):
    promise = promise_create(case=case, by=collector, amount=Decimal("400.00"), due_date=TODAY + dt.timedelta(days=5))

    assert (promise.status, promise.amount, promise.created_by, promise.created_at) == (
        PromiseStatus.PENDING,
        Decimal("400.00"),
        collector,
        NOW,
    )
    case.refresh_from_db()
    assert case.paused_until == TODAY + dt.timedelta(days=6)  # the default grace is one day
    [event] = events(case, EventKind.PROMISE_MADE)
    assert event.actor == collector
    assert event.detail == {
        "promise": promise.pk,
        "amount": "400.00",
        "due_date": "2026-06-14",
        "paused_until": "2026-06-15",
    }


@pytest.mark.parametrize("due_in_days", [0, 30])
def test_a_promise_may_fall_due_from_today_to_thirty_days_ahead(case, collector, due_in_days):
    promise = promise_create(
        case=case, by=collector, amount=Decimal("1000.00"), due_date=TODAY + dt.timedelta(days=due_in_days)
    )
    assert promise.pk


@pytest.mark.parametrize(
    ("amount", "due_in_days", "field", "message"),
    [
        (Decimal("0"), 5, "amount", "more than zero"),
        (Decimal("-5.00"), 5, "amount", "more than zero"),
        (Decimal("1000.01"), 5, "amount", "outstanding 1000.00"),
        (Decimal("10.005"), 5, "amount", "two decimal places"),
        ("ten", 5, "amount", "such as 100.00"),
        (10.5, 5, "amount", "such as 100.00"),
        (Decimal("10.00"), -1, "due_date", "between 2026-06-09 and 2026-07-09"),
        (Decimal("10.00"), 31, "due_date", "between 2026-06-09 and 2026-07-09"),
    ],
)
def test_a_promise_is_refused_for_bad_input_naming_the_field(
    case, collector, unchanged, amount, due_in_days, field, message
):
    with unchanged(), pytest.raises(ValidationError) as caught:
        promise_create(case=case, by=collector, amount=amount, due_date=TODAY + dt.timedelta(days=due_in_days))

    assert list(caught.value.message_dict) == [field]
    assert message in caught.value.message_dict[field][0]


def test_a_promise_date_must_be_a_date(case, collector, unchanged):
    with unchanged(), pytest.raises(ValidationError) as caught:
        promise_create(case=case, by=collector, amount=Decimal("10"), due_date=NOW)

    assert caught.value.message_dict == {"due_date": ["Enter a date."]}


def test_a_second_pending_promise_is_a_conflict_until_the_first_is_cancelled(case, collector, unchanged):
    first = promise_create(case=case, by=collector, amount=Decimal("100"), due_date=TODAY + dt.timedelta(days=3))

    with unchanged(), pytest.raises(ConflictError, match="cancel it"):
        promise_create(case=case, by=collector, amount=Decimal("200"), due_date=TODAY + dt.timedelta(days=9))

    cancelled = promise_cancel(promise=first, by=collector, reason="borrower changed the date")
    second = promise_create(case=case, by=collector, amount=Decimal("200"), due_date=TODAY + dt.timedelta(days=9))

    assert cancelled.status == PromiseStatus.CANCELLED
    assert second.status == PromiseStatus.PENDING
    case.refresh_from_db()
    assert case.paused_until == TODAY + dt.timedelta(days=10)


def test_a_collector_may_not_promise_on_another_collectors_case(case, other_collector, unchanged):
    with unchanged(), pytest.raises(PermissionDenied):
        promise_create(case=case, by=other_collector, amount=Decimal("10"), due_date=TODAY)


@pytest.mark.django_db(transaction=True)
def test_two_promises_made_at_once_one_wins_and_the_other_is_a_conflict(case, collector, supervisor):
    outcome: dict[str, object] = {}

    def second():
        try:
            outcome["promise"] = promise_create(
                case=case, by=supervisor, amount=Decimal("300"), due_date=TODAY + dt.timedelta(days=2)
            )
        except ConflictError as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    with transaction.atomic():
        winner = promise_create(case=case, by=collector, amount=Decimal("100"), due_date=TODAY + dt.timedelta(days=1))
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive()  # waiting for the case row this transaction holds
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert "promise" not in outcome
    assert isinstance(outcome["error"], ConflictError)
    assert list(PromiseToPay.objects.filter(case=case).values_list("pk", "status")) == [(winner.pk, "pending")]
    assert len(events(case, EventKind.PROMISE_MADE)) == 1


def test_cancelling_a_promise_ends_the_pause_and_is_on_the_timeline(case, collector):
    promise = promise_create(case=case, by=collector, amount=Decimal("100"), due_date=TODAY + dt.timedelta(days=3))

    cancelled = promise_cancel(promise=promise, by=collector, reason=" withdrawn ")

    assert cancelled.status == PromiseStatus.CANCELLED
    assert cancelled.settled_at == NOW
    case.refresh_from_db()
    assert case.paused_until is None
    [event] = events(case, EventKind.PROMISE_CANCELLED)
    assert (event.actor, event.detail) == (collector, {"promise": promise.pk, "reason": "withdrawn"})


def test_cancelling_needs_a_reason_and_a_pending_promise(case, collector, other_collector, unchanged):
    promise = promise_create(case=case, by=collector, amount=Decimal("100"), due_date=TODAY + dt.timedelta(days=3))

    with unchanged(), pytest.raises(ValidationError) as caught:
        promise_cancel(promise=promise, by=collector, reason="  ")
    assert list(caught.value.message_dict) == ["reason"]
    with unchanged(), pytest.raises(PermissionDenied):
        promise_cancel(promise=promise, by=other_collector, reason="not mine")

    promise_cancel(promise=promise, by=collector, reason="withdrawn")
    with unchanged(), pytest.raises(ConflictError, match="Cancelled"):
        promise_cancel(promise=promise, by=collector, reason="again")


# --- payment plans ---------------------------------------------------------------------


def schedule(*items):
    return [(TODAY + dt.timedelta(days=days), Decimal(amount)) for days, amount in items]


def test_a_proposed_plan_stores_its_installments_and_is_on_the_timeline(case, collector):
    plan = plan_propose(
        case=case,
        by=collector,
        installments=schedule((0, "300.00"), (30, "300.00")),
        waived_amount=Decimal("400.00"),
        note="hardship",
    )

    assert (plan.status, plan.total_amount, plan.waived_amount, plan.created_by) == (
        PlanStatus.PROPOSED,
        Decimal("600.00"),
        Decimal("400.00"),
        collector,
    )
    assert list(plan.installments.values_list("sequence", "due_date", "amount")) == [
        (1, TODAY, Decimal("300.00")),
        (2, TODAY + dt.timedelta(days=30), Decimal("300.00")),
    ]
    [event] = events(case, EventKind.PLAN_PROPOSED)
    assert event.actor == collector
    assert event.detail["total"] == "600.00"
    assert event.detail["waived"] == "400.00"
    assert event.detail["note"] == "hardship"
    assert len(event.detail["installments"]) == 2


@pytest.mark.parametrize(
    ("installments", "waived", "field", "message"),
    [
        ([], "0", "installments", "at least one"),
        (schedule((1, "100")) * 25, "0", "installments", "at most 24"),
        (schedule((5, "100"), (5, "100")), "0", "installments", "Installment 2: Each date must come after"),
        (schedule((-1, "100")), "0", "installments", "Installment 1: The date must be between"),
        (schedule((731, "100")), "0", "installments", "Installment 1: The date must be between"),
        (schedule((1, "0")), "0", "installments", "Installment 1: The amount must be more than zero"),
        (schedule((1, "1.001")), "0", "installments", "two decimal places"),
        ([(TODAY,)], "0", "installments", "give a date and an amount"),
        (schedule((1, "600"), (31, "300")), "100.01", "installments", "exceeds the outstanding 1000.00"),
        (schedule((1, "100")), "-1", "waived_amount", "cannot be negative"),
    ],
)
def test_a_plan_is_refused_for_bad_input_naming_the_field(
    case, collector, unchanged, installments, waived, field, message
):
    with unchanged(), pytest.raises(ValidationError) as caught:
        plan_propose(case=case, by=collector, installments=installments, waived_amount=Decimal(waived))

    assert list(caught.value.message_dict) == [field]
    assert message in " ".join(caught.value.message_dict[field])


def test_one_live_plan_per_case(case, collector, unchanged):
    plan_propose(case=case, by=collector, installments=schedule((1, "100")))

    with unchanged(), pytest.raises(ConflictError, match="proposed or active"):
        plan_propose(case=case, by=collector, installments=schedule((2, "100")))


def test_a_collector_may_not_propose_a_plan_on_another_collectors_case(case, other_collector, unchanged):
    with unchanged(), pytest.raises(PermissionDenied):
        plan_propose(case=case, by=other_collector, installments=schedule((1, "100")))


def test_a_supervisor_approves_a_collectors_plan_and_it_becomes_active(case, collector, supervisor):
    plan = plan_propose(case=case, by=collector, installments=schedule((1, "100")))

    approved = plan_approve(plan=plan, by=supervisor)

    assert (approved.status, approved.approved_by) == (PlanStatus.ACTIVE, supervisor)
    [event] = events(case, EventKind.PLAN_APPROVED)
    assert (event.actor, event.detail["plan"], event.detail["proposed_by"]) == (supervisor, plan.pk, collector.pk)


def test_four_eyes_a_supervisor_may_not_approve_their_own_plan(case, supervisor, other_supervisor, unchanged):
    plan = plan_propose(case=case, by=supervisor, installments=schedule((1, "100")))

    with unchanged(), pytest.raises(PermissionDenied, match="Four eyes"):
        plan_approve(plan=plan, by=supervisor)

    assert plan_approve(plan=plan, by=other_supervisor).status == PlanStatus.ACTIVE


def test_collectors_do_not_approve_plans_and_a_plan_is_approved_once(
    case, collector, supervisor, other_supervisor, unchanged
):
    plan = plan_propose(case=case, by=collector, installments=schedule((1, "100")))

    with unchanged(), pytest.raises(PermissionDenied, match="Only supervisors"):
        plan_approve(plan=plan, by=collector)
    plan_approve(plan=plan, by=supervisor)
    with unchanged(), pytest.raises(ConflictError, match="Active"):
        plan_approve(plan=plan, by=other_supervisor)


# --- the sweep honours the pauses ------------------------------------------------------


def test_the_sweep_leaves_a_promised_case_alone_and_resumes_after_date_plus_grace(collector):
    due = dt.date(2026, 6, 1)
    loan = loan_with_schedule([due])
    sweep_run(as_of=TODAY, now=NOW)  # DPD 8: phone
    case = Case.objects.get(loan=loan, status__in=LIVE_STATUSES)
    Case.objects.filter(pk=case.pk).update(assigned_to=collector)
    promise_create(case=case, by=collector, amount=Decimal("500"), due_date=TODAY + dt.timedelta(days=30))
    third_party_day = due + dt.timedelta(days=31)

    sweep_run(as_of=third_party_day, now=NOW + dt.timedelta(days=23))

    case.refresh_from_db()
    assert case.stage.code == "phone"  # DPD 31 would mean third party, but the case is paused


def test_the_sweep_leaves_a_case_with_an_approved_plan_alone(collector, supervisor):
    due = dt.date(2026, 6, 1)
    loan = loan_with_schedule([due])
    sweep_run(as_of=TODAY, now=NOW)
    case = Case.objects.get(loan=loan, status__in=LIVE_STATUSES)
    Case.objects.filter(pk=case.pk).update(assigned_to=collector)
    plan = plan_propose(case=case, by=collector, installments=schedule((40, "500"), (60, "500")))
    plan_approve(plan=plan, by=supervisor)

    sweep_run(as_of=due + dt.timedelta(days=31), now=NOW + dt.timedelta(days=23))

    case.refresh_from_db()
    assert case.stage.code == "phone"
    plan.refresh_from_db()
    assert plan.status == PlanStatus.ACTIVE


# --- holds -----------------------------------------------------------------------------


def test_a_supervisor_places_any_hold_and_the_case_is_on_hold_at_once(case, supervisor):
    hold = hold_place(case=case, by=supervisor, reason="bankruptcy", until=TODAY + dt.timedelta(days=10), note="filed")

    assert (hold.reason, hold.ends_on, hold.placed_by, hold.starts_at, hold.note) == (
        "bankruptcy",
        TODAY + dt.timedelta(days=10),
        supervisor,
        NOW,
        "filed",
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.ON_HOLD
    [event] = events(case, EventKind.HOLD_PLACED)
    assert event.actor == supervisor
    assert event.detail == {"hold": hold.pk, "reason": "bankruptcy", "until": "2026-06-19", "note": "filed"}


@pytest.mark.parametrize("reason", ["dispute", "cease_communication"])
def test_a_collector_records_the_holds_a_borrower_raises_on_their_own_case(case, collector, reason):
    assert hold_place(case=case, by=collector, reason=reason).placed_by == collector


@pytest.mark.parametrize("reason", ["breathing_space", "bankruptcy", "deceased", "legal_review"])
def test_a_collector_may_not_place_other_holds(case, collector, unchanged, reason):
    with unchanged(), pytest.raises(PermissionDenied, match="dispute and cease-communication"):
        hold_place(case=case, by=collector, reason=reason)


def test_a_collector_may_not_place_a_hold_on_another_collectors_case(case, other_collector, unchanged):
    with unchanged(), pytest.raises(PermissionDenied):
        hold_place(case=case, by=other_collector, reason="dispute")


def test_legal_staff_may_place_a_legal_review_hold(case, legal):
    assert hold_place(case=case, by=legal, reason="legal_review").placed_by == legal


def test_a_hold_is_refused_for_an_unknown_reason_or_an_end_in_the_past(case, supervisor, unchanged):
    with unchanged(), pytest.raises(ValidationError) as caught:
        hold_place(case=case, by=supervisor, reason="holiday", until=TODAY - dt.timedelta(days=1))

    assert set(caught.value.message_dict) == {"reason", "until"}
    assert "2026-06-09" in caught.value.message_dict["until"][0]


def test_the_same_hold_twice_is_a_conflict(case, supervisor, unchanged):
    hold_place(case=case, by=supervisor, reason="dispute")

    with unchanged(), pytest.raises(ConflictError, match="already has an active Dispute hold"):
        hold_place(case=case, by=supervisor, reason="dispute")


def test_releasing_the_last_hold_reopens_the_case(case, supervisor):
    dispute = hold_place(case=case, by=supervisor, reason="dispute")
    deceased = hold_place(case=case, by=supervisor, reason="deceased")

    hold_release(hold=dispute, by=supervisor, note="resolved")
    case.refresh_from_db()
    assert case.status == CaseStatus.ON_HOLD  # the other hold still holds it

    released = hold_release(hold=deceased, by=supervisor)

    assert (released.released_at, released.released_by) == (NOW, supervisor)
    case.refresh_from_db()
    assert case.status == CaseStatus.OPEN
    assert [e.detail["hold"] for e in events(case, EventKind.HOLD_RELEASED)] == [dispute.pk, deceased.pk]
    assert events(case, EventKind.HOLD_RELEASED)[0].detail["note"] == "resolved"


def test_releasing_returns_a_case_waiting_for_approval_to_waiting(case, supervisor):
    Case.objects.filter(pk=case.pk).update(status=CaseStatus.AWAITING_APPROVAL, pending_stage=case.stage)
    hold = hold_place(case=case, by=supervisor, reason="dispute")

    hold_release(hold=hold, by=supervisor)

    case.refresh_from_db()
    assert case.status == CaseStatus.AWAITING_APPROVAL


def test_only_supervisors_release_holds_and_only_once(case, collector, supervisor, unchanged):
    hold = hold_place(case=case, by=collector, reason="dispute")

    with unchanged(), pytest.raises(PermissionDenied, match="Only supervisors"):
        hold_release(hold=hold, by=collector)
    hold_release(hold=hold, by=supervisor)
    with unchanged(), pytest.raises(ConflictError, match="already released"):
        hold_release(hold=hold, by=supervisor)


# --- notes and personal data -----------------------------------------------------------


def test_a_note_is_stored_and_on_the_timeline(case, collector):
    note = note_add(case=case, by=collector, text="  Borrower lost their job.  ")

    assert (note.body, note.author, note.created_at) == ("Borrower lost their job.", collector, NOW)
    [event] = events(case, EventKind.NOTE)
    assert (event.actor, event.detail) == (collector, {"note": note.pk, "text": "Borrower lost their job."})


@pytest.mark.parametrize(("text", "message"), [("   ", "Write the note."), ("x" * 5001, "at most 5000 characters")])
def test_an_empty_or_overlong_note_is_refused(case, collector, unchanged, text, message):
    with unchanged(), pytest.raises(ValidationError) as caught:
        note_add(case=case, by=collector, text=text)

    assert message in caught.value.message_dict["text"][0]


def test_a_collector_may_not_add_notes_to_another_collectors_case(case, other_collector, unchanged):
    with unchanged(), pytest.raises(PermissionDenied):
        note_add(case=case, by=other_collector, text="hello")


@pytest.mark.parametrize(("field", "value"), [("phone", "+8613812345678"), ("national_id", "110101199003074512")])
def test_a_supervisor_reveals_a_field_with_a_reason_on_the_timeline(case, supervisor, field, value):
    assert borrower_reveal(case=case, by=supervisor, field=field, reason="verify identity") == value

    [event] = events(case, EventKind.PII_REVEALED)
    assert (event.actor, event.detail) == (supervisor, {"field": field, "reason": "verify identity"})
    assert list(BorrowerView.objects.values_list("user", "borrower", "what", "reason", "at")) == [
        (supervisor.pk, case.loan.borrower_id, field, "verify identity", NOW)
    ]


def test_revealing_needs_a_known_field_and_a_reason(case, supervisor, unchanged):
    with unchanged(), pytest.raises(ValidationError) as caught:
        borrower_reveal(case=case, by=supervisor, field="email_password", reason=" why ")

    assert set(caught.value.message_dict) == {"field", "reason"}
    assert "at least 5 characters" in caught.value.message_dict["reason"][0]


def test_the_assigned_collector_reveals_the_phone_to_call_and_it_is_audited(case, collector):
    assert borrower_reveal(case=case, by=collector, field="phone", reason="need to call") == case.loan.borrower.phone
    [event] = events(case, EventKind.PII_REVEALED)
    assert event.actor_id == collector.pk


def test_users_without_the_permission_may_not_reveal(case, outsider, unchanged):
    with unchanged(), pytest.raises(PermissionDenied):
        borrower_reveal(case=case, by=outsider, field="phone", reason="need to call")


def test_a_collector_may_not_reveal_on_another_collectors_case(case, other_collector, unchanged):
    with unchanged(), pytest.raises(PermissionDenied):
        borrower_reveal(case=case, by=other_collector, field="phone", reason="need to call")


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("+8613812345678", "+86 138****5678"), ("+12025550123", "+1 202***0123"), ("", ""), ("12345", "*****")],
)
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


def test_mask_id():
    assert mask_id("110101199003074512") == "11************4512"
    assert mask_id("") == ""


# --- who may act: the visibility rule --------------------------------------------------


@pytest.fixture
def agency_rule():
    """An agencies-style rule: members of 'agency_test' see cases with priority 77 (a stand-in)."""
    register_case_visibility("agency_test", lambda user: Q(priority=77))
    yield
    register_case_visibility("agency_test", None)


def test_a_registered_group_rule_widens_who_may_see_and_act_on_a_case(case, agency_rule, unchanged):
    group = Group.objects.create(name="agency_test")
    group.permissions.add(Permission.objects.get(codename="add_note", content_type__app_label="cases"))
    agent = UserFactory(username="agent1")
    agent.groups.add(group)

    with unchanged(), pytest.raises(PermissionDenied):
        note_add(case=case, by=agent, text="not ours yet")
    assert not cases_for_user(agent).exists()

    Case.objects.filter(pk=case.pk).update(priority=77)

    assert list(cases_for_user(agent)) == [case]
    assert note_add(case=case, by=agent, text="placed with us").author == agent


def test_a_rule_may_be_a_queryset_and_collectors_keep_their_own_cases(case, collector, other_collector):
    other = CaseFactory(assigned_to=other_collector)
    register_case_visibility("collector", lambda user: Case.objects.filter(pk=other.pk))
    try:
        assert set(cases_for_user(collector)) == {case, other}
    finally:
        register_case_visibility("collector", None)
    assert list(cases_for_user(collector)) == [case]


def test_inactive_and_anonymous_users_see_no_cases(case, collector):
    from django.contrib.auth.models import AnonymousUser

    assert not cases_for_user(AnonymousUser()).exists()
    collector.is_active = False
    collector.save()
    with pytest.raises(PermissionDenied, match="Log in"):
        note_add(case=case, by=collector, text="hello")


@pytest.mark.parametrize("channel", ["phone", "sms", "email", "visit"])
def test_a_cease_communication_hold_refuses_contacts_but_a_letter(case, collector, supervisor, unchanged, channel):
    hold_place(case=case, by=supervisor, reason="cease_communication", note="asked in writing")

    with unchanged(), pytest.raises(ConflictError, match="stop contacting them"):
        contact_log(case=case, by=collector, channel=channel, outcome="no_answer")
    attempt = contact_log(case=case, by=collector, channel="letter", outcome="no_answer", note="formal notice")
    assert attempt.pk is not None
