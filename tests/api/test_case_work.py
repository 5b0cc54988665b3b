"""Case work through the API: promises, holds and their release, contacts (call caps),
and approval of a waiting stage. The services decide the rules; these tests check that
the API passes them through with the statuses CONTRACT section 7 names."""

import datetime as dt

import pytest

from cases.models import CaseEvent, CaseStatus, ContactAttempt, EventKind, Hold, PromiseToPay
from cases.services import case_evaluate_loan
from tests.api.conftest import token_client
from tests.factories import UserFactory, loan_with_schedule

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 2, 16, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
TODAY = dt.date(2026, 2, 16)


@pytest.fixture(autouse=True)
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


def url(case, action):
    return f"/api/v1/cases/{case.pk}/{action}/"


# --- Promises ---------------------------------------------------------------------------


def test_a_collector_records_a_promise(collector, case_of):
    response = token_client(collector).post(
        url(case_of, "promises"), {"amount": "400.00", "due_date": "2026-02-20"}, format="json"
    )

    assert response.status_code == 201, response.json()
    promise = PromiseToPay.objects.get()
    assert response.json() == {
        "id": promise.pk,
        "case": case_of.pk,
        "amount": "400.00",
        "due_date": "2026-02-20",
        "status": "pending",
        "created_at": response.json()["created_at"],
    }
    assert CaseEvent.objects.filter(case=case_of, kind=EventKind.PROMISE_MADE).count() == 1


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"due_date": "2026-02-20"}, "amount", "required"),
        ({"amount": "0", "due_date": "2026-02-20"}, "amount", "0.01"),
        ({"amount": 12.5, "due_date": "2026-02-20"}, "amount", "decimal strings"),
        ({"amount": "5000.00", "due_date": "2026-02-20"}, "amount", "cannot exceed the outstanding"),
        ({"amount": "100.00"}, "due_date", "required"),
        ({"amount": "100.00", "due_date": "2026-02-01"}, "due_date", "between 2026-02-16 and"),
        ({"amount": "100.00", "due_date": "someday"}, "due_date", "format"),
    ],
)
def test_bad_promises_name_the_field_and_write_nothing(collector, case_of, body, field, fragment):
    response = token_client(collector).post(url(case_of, "promises"), body, format="json")

    assert response.status_code == 400, response.json()
    assert any(fragment.lower() in m.lower() for m in response.json()[field]), response.json()
    assert not PromiseToPay.objects.exists()


def test_a_second_pending_promise_is_a_conflict(collector, case_of):
    client = token_client(collector)
    client.post(url(case_of, "promises"), {"amount": "100.00", "due_date": "2026-02-20"}, format="json")
    response = client.post(url(case_of, "promises"), {"amount": "200.00", "due_date": "2026-02-21"}, format="json")

    assert response.status_code == 409
    assert "pending promise" in response.json()["detail"]
    assert PromiseToPay.objects.count() == 1


def test_a_promise_on_someone_elses_case_is_404(collector, case_of_other):
    response = token_client(collector).post(
        url(case_of_other, "promises"), {"amount": "100.00", "due_date": "2026-02-20"}, format="json"
    )
    assert response.status_code == 404
    assert not PromiseToPay.objects.exists()


def test_a_legal_user_may_not_record_promises(case_of):
    legal = token_client(UserFactory(username="lawyer", role="legal"))
    response = legal.post(url(case_of, "promises"), {"amount": "100.00", "due_date": "2026-02-20"}, format="json")

    assert response.status_code == 403
    assert "promises" in response.json()["detail"]
    assert not PromiseToPay.objects.exists()


# --- Holds ------------------------------------------------------------------------------


def test_a_supervisor_places_and_releases_a_hold(supervisor, case_of):
    client = token_client(supervisor)
    placed = client.post(
        url(case_of, "holds"), {"reason": "bankruptcy", "until": "2026-03-31", "note": "filing"}, format="json"
    )

    assert placed.status_code == 201, placed.json()
    hold = Hold.objects.get()
    assert placed.json()["reason"] == "bankruptcy"
    assert placed.json()["until"] == "2026-03-31"
    assert placed.json()["active"] is True

    released = client.post(f"{url(case_of, 'holds')}{hold.pk}/release/", {"note": "dismissed"}, format="json")

    assert released.status_code == 200, released.json()
    assert released.json()["active"] is False
    hold.refresh_from_db()
    assert hold.released_at is not None
    again = client.post(f"{url(case_of, 'holds')}{hold.pk}/release/", {}, format="json")
    assert again.status_code == 409
    assert "already released" in again.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "reason"), ({"reason": "holiday"}, "reason"), ({"reason": "dispute", "until": "soon"}, "until")],
)
def test_bad_holds_name_the_field(supervisor, case_of, body, field):
    response = token_client(supervisor).post(url(case_of, "holds"), body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Hold.objects.exists()


def test_a_collector_may_record_a_dispute_but_not_a_bankruptcy(collector, case_of):
    client = token_client(collector)

    assert client.post(url(case_of, "holds"), {"reason": "dispute"}, format="json").status_code == 201
    refused = client.post(url(case_of, "holds"), {"reason": "bankruptcy"}, format="json")
    assert refused.status_code == 403
    assert Hold.objects.count() == 1


def test_a_collector_may_not_release_a_hold(collector, supervisor, case_of):
    hold = Hold.objects.create(case=case_of, reason="dispute", placed_by=supervisor)
    response = token_client(collector).post(f"{url(case_of, 'holds')}{hold.pk}/release/", {}, format="json")

    assert response.status_code == 403
    hold.refresh_from_db()
    assert hold.released_at is None


def test_holds_of_someone_elses_case_or_another_case_are_404(collector, supervisor, case_of, case_of_other):
    other_hold = Hold.objects.create(case=case_of_other, reason="dispute", placed_by=supervisor)
    client = token_client(collector)

    assert client.post(url(case_of_other, "holds"), {"reason": "dispute"}, format="json").status_code == 404
    # A hold id of another case, under a case the user may see: still not found.
    response = token_client(supervisor).post(f"{url(case_of, 'holds')}{other_hold.pk}/release/", {}, format="json")
    assert response.status_code == 404
    other_hold.refresh_from_db()
    assert other_hold.released_at is None


# --- Contacts ---------------------------------------------------------------------------


def test_a_collector_logs_a_call(collector, case_of):
    response = token_client(collector).post(
        url(case_of, "contacts"), {"channel": "phone", "outcome": "promise_to_pay", "note": "Friday"}, format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["connected"] is True
    assert ContactAttempt.objects.get().note == "Friday"


def test_the_call_cap_is_409_with_the_next_allowed_time(collector, case_of):
    client = token_client(collector)
    for _ in range(3):
        ok = client.post(
            url(case_of, "contacts"), {"channel": "phone", "outcome": "right_party_contact"}, format="json"
        )
        assert ok.status_code == 201

    response = client.post(url(case_of, "contacts"), {"channel": "phone", "outcome": "no_answer"}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert "Call cap reached" in body["detail"]
    next_allowed = dt.datetime.fromisoformat(body["next_allowed_at"])
    assert next_allowed > NOW
    assert int(response["Retry-After"]) == int((next_allowed - NOW).total_seconds())
    assert ContactAttempt.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "no_answer"}, "channel"),
        ({"channel": "fax", "outcome": "no_answer"}, "channel"),
        ({"channel": "phone"}, "outcome"),
        ({"channel": "phone", "outcome": "maybe"}, "outcome"),
    ],
)
def test_bad_contacts_name_the_field(collector, case_of, body, field):
    response = token_client(collector).post(url(case_of, "contacts"), body, format="json")

    assert response.status_code == 400
    assert "not a valid choice" in response.json()[field][0] or "required" in response.json()[field][0]
    assert not ContactAttempt.objects.exists()


def test_contacts_on_someone_elses_case_are_404(collector, case_of_other):
    response = token_client(collector).post(
        url(case_of_other, "contacts"), {"channel": "phone", "outcome": "no_answer"}, format="json"
    )
    assert response.status_code == 404
    assert not ContactAttempt.objects.exists()


# --- Approval ---------------------------------------------------------------------------


@pytest.fixture
def waiting_case():
    loan = loan_with_schedule([dt.date(2025, 11, 1)])
    case = case_evaluate_loan(loan=loan, as_of=TODAY)
    assert case.status == CaseStatus.AWAITING_APPROVAL
    return case


def test_a_supervisor_approves_a_waiting_stage(supervisor, waiting_case):
    response = token_client(supervisor).post(
        url(waiting_case, "approve-escalation"), {"note": "documents complete"}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["stage"] == "litigation"
    assert response.json()["status"] == "open"
    assert CaseEvent.objects.filter(case=waiting_case, kind=EventKind.APPROVED).count() == 1


def test_approving_a_case_that_is_not_waiting_is_409(supervisor, case_of):
    response = token_client(supervisor).post(url(case_of, "approve-escalation"), {}, format="json")

    assert response.status_code == 409
    assert "not waiting for approval" in response.json()["detail"]


def test_a_collector_may_not_approve(collector, waiting_case):
    waiting_case.assigned_to = collector
    waiting_case.save(update_fields=["assigned_to"])
    response = token_client(collector).post(url(waiting_case, "approve-escalation"), {}, format="json")

    assert response.status_code == 403
    waiting_case.refresh_from_db()
    assert waiting_case.status == CaseStatus.AWAITING_APPROVAL


def test_approving_an_unknown_case_is_404(supervisor):
    assert (
        token_client(supervisor).post("/api/v1/cases/999999/approve-escalation/", {}, format="json").status_code == 404
    )


def test_a_legal_user_may_not_log_contacts(case_of):
    legal = token_client(UserFactory(username="lawyer2", role="legal"))
    response = legal.post(url(case_of, "contacts"), {"channel": "phone", "outcome": "no_answer"}, format="json")

    assert response.status_code == 403
    assert not ContactAttempt.objects.exists()
