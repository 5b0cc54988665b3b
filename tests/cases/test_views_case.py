"""The case page and its actions: who may see and act, what the forms say, what they write."""

import datetime as dt
import re
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from cases.models import (
    CaseEvent,
    CaseStatus,
    ContactAttempt,
    ContactChannel,
    ContactOutcome,
    EventKind,
    Hold,
    HoldReason,
    Installment,
    Note,
    PaymentPlan,
    PromiseToPay,
)
from tests.factories import CaseFactory, UserFactory, stage

pytestmark = pytest.mark.django_db

# A Tuesday morning in Shanghai: inside the call window, far from midnight.
NOW = dt.datetime(2026, 11, 17, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def collector():
    return UserFactory(username="collector-a", first_name="Ann", last_name="Archer", role="collector")


@pytest.fixture
def other_collector():
    return UserFactory(username="collector-b", role="collector")


@pytest.fixture
def supervisor():
    return UserFactory(username="boss", role="supervisor")


@pytest.fixture
def outsider():
    return UserFactory(username="nobody")


@pytest.fixture
def case(collector):
    case = CaseFactory(
        assigned_to=collector,
        stage=stage("phone"),
        days_past_due=12,
        outstanding=Decimal("2000.00"),
        overdue_amount=Decimal("1000.00"),
        loan__borrower__name="Li Na",
        loan__borrower__phone="+8613812345678",
        loan__borrower__national_id="110101199003074512",
    )
    Installment.objects.create(loan=case.loan, sequence=1, due_date=dt.date(2026, 11, 5), amount=Decimal("1000.00"))
    Installment.objects.create(loan=case.loan, sequence=2, due_date=dt.date(2026, 12, 5), amount=Decimal("1000.00"))
    return case


def url(name, case, **kwargs):
    return reverse(name, kwargs={"case_id": case.pk, **kwargs})


# --- the page ---------------------------------------------------------------------------


def test_it_sends_anonymous_users_to_the_login_page(client, case):
    response = client.get(url("case-detail", case))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_shows_the_collector_their_case(client, collector, case):
    CaseEvent.objects.create(case=case, kind=EventKind.NOTE, actor=collector, detail={"text": "Called the office"})
    client.force_login(collector)

    response = client.get(url("case-detail", case))

    html = response.content.decode()
    assert response.status_code == 200
    for text in ("Li Na", case.loan.external_id, "Phone collection", "Called the office", "2,000.00", ">12<"):
        assert text in html, text
    # The stage path marks the current stage.
    assert re.search(r'<li class="current" aria-current="step">\s*Phone collection', html)
    # Phone and id are masked until revealed.
    assert "+8613812345678" not in html
    assert "110101199003074512" not in html
    assert "+86 138****5678" in html
    assert "11************4512" in html


def test_a_collector_gets_404_for_another_collectors_case(client, other_collector, case):
    client.force_login(other_collector)

    assert client.get(url("case-detail", case)).status_code == 404
    response = client.post(url("case-note", case), {"note-text": "sneaky"})
    assert response.status_code == 404
    assert not Note.objects.exists()


def test_a_user_without_a_role_gets_404(client, outsider, case):
    client.force_login(outsider)

    assert client.get(url("case-detail", case)).status_code == 404


def test_a_supervisor_sees_any_case(client, supervisor, case):
    client.force_login(supervisor)

    assert client.get(url("case-detail", case)).status_code == 200


def test_times_are_shown_in_the_users_time_zone(client, collector, case):
    CaseEvent.objects.create(case=case, kind=EventKind.NOTE, actor=collector, at=NOW, detail={"text": "x"})
    client.force_login(collector)

    assert "2026-11-17 18:00" in client.get(url("case-detail", case)).content.decode()  # Asia/Shanghai, the default
    collector.time_zone = "America/New_York"
    collector.save(update_fields=["time_zone"])
    assert "2026-11-17 05:00" in client.get(url("case-detail", case)).content.decode()


def test_the_page_refuses_post(client, collector, case):
    client.force_login(collector)

    assert client.post(url("case-detail", case)).status_code == 405


# Session, user, permissions (user and groups), the user's groups (cases_for_user's
# visibility rules), the case with its borrower, loan, stages and collector, the stage
# path, installments, timeline, holds, promises, plans, the plans' installments, the
# compliance policy, the call-cap attempts, the approved templates (notifications' send
# panel), and the session's save (savepoint, UPDATE, release: SESSION_SAVE_EVERY_REQUEST).
CASE_PAGE_QUERIES = 19


def test_the_case_page_sends_a_fixed_number_of_queries(client, collector, case, django_assert_num_queries):
    client.force_login(collector)
    with django_assert_num_queries(CASE_PAGE_QUERIES):
        assert client.get(url("case-detail", case)).status_code == 200

    for n in range(30):
        CaseEvent.objects.create(case=case, kind=EventKind.NOTE, actor=collector, detail={"text": f"n{n}"})
        ContactAttempt.objects.create(
            case=case, channel=ContactChannel.PHONE, outcome=ContactOutcome.NO_ANSWER, collector=collector
        )
        Installment.objects.create(
            loan=case.loan, sequence=n + 3, due_date=dt.date(2027, 1, 1) + dt.timedelta(days=n), amount=Decimal(1)
        )
    Hold.objects.create(case=case, reason=HoldReason.DISPUTE, placed_by=collector)
    PromiseToPay.objects.create(case=case, amount=Decimal(10), due_date=dt.date(2026, 11, 20))
    plan = PaymentPlan.objects.create(case=case, total_amount=Decimal(20))
    for n in range(1, 5):
        plan.installments.create(sequence=n, due_date=dt.date(2026, 12, n), amount=Decimal(5))

    with django_assert_num_queries(CASE_PAGE_QUERIES):
        assert client.get(url("case-detail", case)).status_code == 200


# --- logging a contact ---------------------------------------------------------------------


def test_a_collector_logs_a_call_with_a_promise(client, collector, case):
    client.force_login(collector)

    response = client.post(
        url("case-contact", case),
        {
            "contact-channel": "phone",
            "contact-outcome": "promise_to_pay",
            "contact-note": "Will pay on Friday",
            "contact-promise_amount": "500.00",
            "contact-promise_due_date": "2026-11-20",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == url("case-detail", case)
    attempt = ContactAttempt.objects.get(case=case)
    assert (attempt.channel, attempt.outcome, attempt.connected) == ("phone", "promise_to_pay", True)
    promise = PromiseToPay.objects.get(case=case)
    assert (promise.amount, promise.due_date) == (Decimal("500.00"), dt.date(2026, 11, 20))
    page = client.get(response["Location"]).content.decode()
    assert "Contact logged and promise to pay recorded." in page
    assert "Phone call · Promise to pay" in page
    assert "500.00 by 2026-11-20" in page


def test_a_promise_outcome_needs_the_amount_and_date(client, collector, case):
    client.force_login(collector)

    response = client.post(url("case-contact", case), {"contact-channel": "phone", "contact-outcome": "promise_to_pay"})

    assert response.status_code == 400
    form = response.context["forms"]["contact"]
    assert form.errors["promise_amount"] == ["Enter the promised amount."]
    assert "promise_due_date" in form.errors
    assert not ContactAttempt.objects.exists()


def test_a_bad_promise_rolls_back_the_call_and_names_the_field(client, collector, case):
    client.force_login(collector)

    response = client.post(
        url("case-contact", case),
        {
            "contact-channel": "phone",
            "contact-outcome": "promise_to_pay",
            "contact-promise_amount": "99999.00",
            "contact-promise_due_date": "2026-11-20",
        },
    )

    assert response.status_code == 400
    errors = response.context["forms"]["contact"].errors
    assert errors["promise_amount"] == ["The promised amount cannot exceed the outstanding 2000.00."]
    assert "The promised amount cannot exceed" in response.content.decode()
    assert not ContactAttempt.objects.exists()
    assert not PromiseToPay.objects.exists()
    assert not CaseEvent.objects.filter(case=case).exists()


def test_an_unknown_outcome_is_refused_on_its_field(client, collector, case):
    client.force_login(collector)

    response = client.post(url("case-contact", case), {"contact-channel": "phone", "contact-outcome": "bribed"})

    assert response.status_code == 400
    assert "outcome" in response.context["forms"]["contact"].errors
    assert not ContactAttempt.objects.exists()


def test_beyond_the_call_cap_the_page_says_when_the_next_call_is_allowed(client, collector, case):
    client.force_login(collector)
    for _ in range(3):
        ContactAttempt.objects.create(
            case=case,
            channel=ContactChannel.PHONE,
            outcome=ContactOutcome.RIGHT_PARTY,
            connected=True,
            attempted_at=NOW - dt.timedelta(minutes=30),
            collector=collector,
        )

    page = client.get(url("case-detail", case)).content.decode()
    # The borrower's next midnight in Asia/Shanghai, shown in the collector's zone (the same).
    assert "Next call allowed at" in page
    assert "2026-11-18 00:00" in page

    response = client.post(url("case-contact", case), {"contact-channel": "phone", "contact-outcome": "no_answer"})

    assert response.status_code == 409
    assert "Call cap reached" in response.content.decode()
    assert ContactAttempt.objects.filter(case=case).count() == 3


def test_with_htmx_an_action_answers_with_the_case_body(client, collector, case):
    client.force_login(collector)

    response = client.post(
        url("case-contact", case),
        {"contact-channel": "sms", "contact-outcome": "no_answer"},
        headers={"HX-Request": "true", "HX-Target": "case-body"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "Contact logged." in html
    assert "SMS · No answer" in html


def test_with_htmx_errors_come_back_in_the_form(client, collector, case):
    client.force_login(collector)

    response = client.post(
        url("case-note", case), {"note-text": "   "}, headers={"HX-Request": "true", "HX-Target": "case-body"}
    )

    assert response.status_code == 200  # htmx swaps only 2xx answers
    assert "<html" not in response.content.decode()
    assert response.context["forms"]["note"].errors["text"]
    assert not Note.objects.exists()


# --- promises, plans, notes, holds ---------------------------------------------------------


def test_a_promise_in_the_past_is_refused_on_the_date_field(client, collector, case):
    client.force_login(collector)

    response = client.post(url("case-promise", case), {"promise-amount": "100", "promise-due_date": "2026-11-01"})

    assert response.status_code == 400
    assert "The promised date must be between" in response.context["forms"]["promise"].errors["due_date"][0]
    assert not PromiseToPay.objects.exists()


def test_a_second_pending_promise_is_a_conflict(client, collector, case):
    client.force_login(collector)
    data = {"promise-amount": "100", "promise-due_date": "2026-11-20"}

    assert client.post(url("case-promise", case), data).status_code == 302
    response = client.post(url("case-promise", case), data)

    assert response.status_code == 409
    assert "already has a pending promise" in response.content.decode()
    assert PromiseToPay.objects.count() == 1


def test_a_collector_proposes_a_payment_plan(client, collector, case):
    client.force_login(collector)

    response = client.post(
        url("case-plan", case),
        {
            "plan-date_1": "2026-11-25",
            "plan-amount_1": "600.00",
            "plan-date_2": "2026-12-25",
            "plan-amount_2": "600.00",
            "plan-waived_amount": "100.00",
            "plan-note": "Salary on the 25th",
        },
    )

    assert response.status_code == 302
    plan = PaymentPlan.objects.get(case=case)
    assert (plan.total_amount, plan.waived_amount, plan.status) == (Decimal("1200.00"), Decimal("100.00"), "proposed")
    assert plan.installments.count() == 2
    page = client.get(url("case-detail", case)).content.decode()
    assert "Payment plan" in page and "Proposed" in page and "2026-12-25" in page


def test_a_plan_row_with_a_date_and_no_amount_is_refused(client, collector, case):
    client.force_login(collector)

    response = client.post(url("case-plan", case), {"plan-date_1": "2026-11-25"})

    assert response.status_code == 400
    assert response.context["forms"]["plan"].errors["amount_1"]
    assert not PaymentPlan.objects.exists()


def test_a_plan_over_the_outstanding_is_refused_with_the_services_message(client, collector, case):
    client.force_login(collector)

    response = client.post(url("case-plan", case), {"plan-date_1": "2026-11-25", "plan-amount_1": "5000.00"})

    assert response.status_code == 400
    assert "exceeds the outstanding" in response.content.decode()
    assert not PaymentPlan.objects.exists()


def test_a_collector_adds_a_note(client, collector, case):
    client.force_login(collector)

    response = client.post(url("case-note", case), {"note-text": "Borrower moved to Shenzhen"})

    assert response.status_code == 302
    assert Note.objects.get(case=case).body == "Borrower moved to Shenzhen"
    assert "Borrower moved to Shenzhen" in client.get(url("case-detail", case)).content.decode()


def test_a_collector_places_a_dispute_hold(client, collector, case):
    client.force_login(collector)

    response = client.post(url("case-hold", case), {"hold-reason": "dispute", "hold-note": "Says the loan was repaid"})

    assert response.status_code == 302
    hold = Hold.objects.get(case=case)
    assert hold.reason == HoldReason.DISPUTE
    case.refresh_from_db()
    assert case.status == CaseStatus.ON_HOLD


def test_a_collector_may_not_choose_a_bankruptcy_hold(client, collector, case):
    client.force_login(collector)

    response = client.post(url("case-hold", case), {"hold-reason": "bankruptcy"})

    assert response.status_code == 400
    assert "reason" in response.context["forms"]["hold"].errors
    assert not Hold.objects.exists()


def test_a_collector_may_not_release_a_hold(client, collector, case):
    hold = Hold.objects.create(case=case, reason=HoldReason.DISPUTE, placed_by=collector)
    client.force_login(collector)

    response = client.post(reverse("case-hold-release", kwargs={"case_id": case.pk, "hold_id": hold.pk}))

    assert response.status_code == 403
    assert "Only supervisors may release holds." in response.content.decode()
    hold.refresh_from_db()
    assert hold.released_at is None


def test_a_supervisor_releases_a_hold(client, supervisor, collector, case):
    hold = Hold.objects.create(case=case, reason=HoldReason.DISPUTE, placed_by=collector)
    client.force_login(supervisor)

    response = client.post(reverse("case-hold-release", kwargs={"case_id": case.pk, "hold_id": hold.pk}))

    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.released_by == supervisor


# --- revealing personal data ---------------------------------------------------------------


def test_a_collector_reveals_the_phone_of_their_own_case_with_a_reason(client, collector, case):
    client.force_login(collector)

    assert "Reveal with a reason" in client.get(url("case-detail", case)).content.decode()
    response = client.post(url("case-reveal", case), {"reveal-field": "phone", "reveal-reason": "to call them"})

    assert response.status_code == 200
    assert "+8613812345678" in response.content.decode()
    assert CaseEvent.objects.filter(kind=EventKind.PII_REVEALED, actor=collector).count() == 1


def test_a_user_without_the_permission_is_not_offered_the_reveal_and_is_refused_it(client, case):
    from django.contrib.auth import get_user_model

    outsider = get_user_model().objects.create_user("outsider", password="pw")
    client.force_login(outsider)
    response = client.post(url("case-reveal", case), {"reveal-field": "phone", "reveal-reason": "to call them"})

    assert response.status_code in (403, 404)
    assert "+8613812345678" not in response.content.decode()
    assert not CaseEvent.objects.filter(kind=EventKind.PII_REVEALED).exists()


def test_a_supervisor_reveals_the_phone_with_a_reason_which_is_audited(client, supervisor, case):
    client.force_login(supervisor)

    response = client.post(
        url("case-reveal", case), {"reveal-field": "phone", "reveal-reason": "Borrower asked for callback"}
    )

    assert response.status_code == 200
    assert "+8613812345678" in response.content.decode()
    event = CaseEvent.objects.get(case=case, kind=EventKind.PII_REVEALED)
    assert event.actor == supervisor
    assert event.detail == {"field": "phone", "reason": "Borrower asked for callback"}
    # The next view masks it again.
    assert "+8613812345678" not in client.get(url("case-detail", case)).content.decode()


def test_a_reveal_without_a_reason_is_refused_on_the_reason_field(client, supervisor, case):
    client.force_login(supervisor)

    response = client.post(url("case-reveal", case), {"reveal-field": "phone", "reveal-reason": "x"})

    assert response.status_code == 400
    assert response.context["forms"]["reveal"].errors["reason"]
    assert not CaseEvent.objects.filter(kind=EventKind.PII_REVEALED).exists()


def test_a_resolved_case_shows_no_actions(client, collector, case):
    case.status = CaseStatus.RESOLVED
    case.resolved_at = timezone.now()
    case.save()
    client.force_login(collector)

    html = client.get(url("case-detail", case)).content.decode()

    assert "Log a contact" not in html
