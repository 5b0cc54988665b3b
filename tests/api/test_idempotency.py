"""Idempotency-Key on POSTs: replay, conflicts, per-user scope, and a real concurrent
duplicate (two threads, two PostgreSQL connections)."""

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction

from cases.models import IdempotencyKey, Loan, Payment
from tests.api.conftest import token_client
from tests.api.test_loans import LOAN, body
from tests.factories import UserFactory, loan_with_schedule

LOANS = "/api/v1/loans/"
PAYMENTS = "/api/v1/payments/"


@pytest.fixture
def lender(integration):
    return token_client(integration)


@pytest.mark.django_db
def test_the_same_key_and_body_replays_the_first_answer(lender):
    first = lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == 201
    # Without the key the second POST would be a 409 (the loan exists); with it, the retry
    # gets the first answer.
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Loan.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_409(lender):
    lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    response = lender.post(LOANS, body(external_id="L-OTHER"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 409
    assert "already used for a different request" in response.json()["detail"]
    assert response.json()["Idempotency-Key"] == [response.json()["detail"]]
    assert not Loan.objects.filter(external_id="L-OTHER").exists()


@pytest.mark.django_db
def test_the_same_key_on_another_endpoint_is_409(lender):
    loan_with_schedule([dt.date(2026, 1, 1)], external_id="L-K")
    lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    payment = {"external_id": "P-K", "loan": "L-K", "amount": "10.00", "paid_at": "2026-01-02T10:00:00+08:00"}
    response = lender.post(PAYMENTS, payment, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 409
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_keys_are_scoped_per_user(lender):
    other = token_client(UserFactory(username="second-lender", role="integration"))

    assert lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    # Another user's identical key is theirs: it runs (and meets the existing loan).
    response = other.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]
    assert IdempotencyKey.objects.filter(key="shared").count() == 2


@pytest.mark.django_db
def test_a_bad_request_is_stored_and_replayed_too(lender):
    bad = body(currency="XYZ")
    first = lender.post(LOANS, bad, format="json", HTTP_IDEMPOTENCY_KEY="k-bad")
    again = lender.post(LOANS, bad, format="json", HTTP_IDEMPOTENCY_KEY="k-bad")

    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256])
def test_an_unusable_key_is_400_naming_the_header(lender, key):
    response = lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert "255" in response.json()["Idempotency-Key"][0]
    assert not Loan.objects.exists()


@pytest.mark.django_db
def test_a_request_refused_before_the_handler_does_not_use_up_the_key(lender, collector):
    refused = token_client(collector).post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert refused.status_code == 403
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_duplicate_gets_409_while_the_first_runs(integration):
    loan = loan_with_schedule([dt.date(2026, 1, 5)], external_id="L-RACE")
    payment = {"external_id": "P-RACE", "loan": "L-RACE", "amount": "300.00", "paid_at": "2026-01-06T10:00:00+08:00"}
    results: dict[str, object] = {}

    def post(name):
        try:
            results[name] = token_client(integration).post(
                PAYMENTS, payment, format="json", HTTP_IDEMPOTENCY_KEY="race-key"
            )
        finally:
            connection.close()

    # Hold the loan's row lock, so the first request claims the key and then waits inside
    # payment_record while the duplicate arrives on its own connection.
    with transaction.atomic():
        list(type(loan).objects.select_for_update().filter(pk=loan.pk))
        first = threading.Thread(target=post, args=("first",))
        first.start()
        deadline = time.monotonic() + 20
        while not IdempotencyKey.objects.filter(key="race-key").exists():
            assert time.monotonic() < deadline, "the first request never claimed its key"
            time.sleep(0.02)
        second = threading.Thread(target=post, args=("second",))
        second.start()
        second.join(20)
        assert not second.is_alive()
        assert first.is_alive(), "the first request should still be waiting for the loan lock"
    first.join(20)

    assert results["second"].status_code == 409
    assert "still being processed" in results["second"].json()["detail"]
    assert results["first"].status_code == 201, results["first"].json()
    assert Payment.objects.count() == 1
    replay = token_client(integration).post(PAYMENTS, payment, format="json", HTTP_IDEMPOTENCY_KEY="race-key")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == results["first"].json()


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_requests_with_one_key_do_the_work_once(integration):
    loan_with_schedule([dt.date(2026, 1, 5)], external_id="L-RACE2")
    body_ = {"external_id": "P-R2", "loan": "L-RACE2", "amount": "100.00", "paid_at": "2026-01-06T10:00:00+08:00"}
    start = threading.Barrier(2)
    statuses = []

    def post():
        try:
            start.wait(10)
            statuses.append(
                token_client(integration).post(PAYMENTS, body_, format="json", HTTP_IDEMPOTENCY_KEY="k2").status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # One did the work; the other was refused while it ran, or replayed its answer after.
    assert sorted(statuses) in ([201, 201], [201, 409])
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_a_claim_left_by_a_request_that_died_is_taken_over_after_a_while(lender, integration, time_machine):
    from django.utils import timezone

    from cases.services.idempotency import idempotency_fingerprint

    # What a worker killed mid-request leaves behind: a claim without an answer.
    IdempotencyKey.objects.create(
        user=integration,
        key="k-dead",
        method="POST",
        path=LOANS,
        fingerprint=idempotency_fingerprint(method="POST", path=LOANS, body=LOAN),
        created_at=timezone.now(),
    )
    assert lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="k-dead").status_code == 409

    time_machine.move_to(timezone.now() + dt.timedelta(minutes=6))
    retry = lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="k-dead")

    assert retry.status_code == 201
    assert Loan.objects.count() == 1
    assert IdempotencyKey.objects.get(key="k-dead").response_status == 201


@pytest.mark.django_db
def test_keys_older_than_a_week_are_pruned_daily(lender, integration):
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from cases.tasks import idempotency_prune

    lender.post(LOANS, LOAN, format="json", HTTP_IDEMPOTENCY_KEY="old")
    lender.post(LOANS, body(external_id="L-NEW"), format="json", HTTP_IDEMPOTENCY_KEY="new")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - dt.timedelta(days=8))

    assert idempotency_prune.apply().get() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    assert idempotency_prune.apply().get() == 0  # twice changes nothing
    assert PeriodicTask.objects.get(task="cases.tasks.idempotency_prune").enabled
