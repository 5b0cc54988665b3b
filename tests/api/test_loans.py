"""POST /api/v1/loans/ and GET /api/v1/loans/{external_id}/."""

import copy
import datetime as dt

import pytest

from cases.models import Borrower, Installment, Loan
from tests.api.conftest import make_case, token_client
from tests.factories import loan_with_schedule

pytestmark = pytest.mark.django_db
URL = "/api/v1/loans/"

LOAN = {
    "external_id": "L-API-1",
    "borrower": {
        "external_id": "B-API-1",
        "name": "王芳",
        "phone": "+8613812345678",
        "email": "wang@example.com",
        "language": "zh-hans",
        "timezone": "Asia/Shanghai",
    },
    "principal": "3000.00",
    "currency": "CNY",
    "disbursed_on": "2026-01-05",
    "installments": [
        {"due_date": "2026-02-05", "amount": "1000.00"},
        {"due_date": "2026-03-05", "amount": "2000.00"},
    ],
}


def body(**changes):
    data = copy.deepcopy(LOAN)
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is ...:
            del node[int(leaf) if leaf.isdigit() else leaf]
        else:
            node[int(leaf) if leaf.isdigit() else leaf] = value
    return data


@pytest.fixture
def lender(integration):
    return token_client(integration)


def test_it_creates_the_loan_its_schedule_and_the_borrower(lender):
    response = lender.post(URL, LOAN, format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["external_id"] == "L-API-1"
    assert data["borrower"] == {"external_id": "B-API-1", "name": "王芳"}
    assert data["installments"] == [
        {"due_date": "2026-02-05", "amount": "1000.00", "paid_amount": "0.00"},
        {"due_date": "2026-03-05", "amount": "2000.00", "paid_amount": "0.00"},
    ]
    assert data["outstanding"] == "3000.00"
    assert data["case"] is None
    loan = Loan.objects.get(external_id="L-API-1")
    assert loan.borrower.phone == "+8613812345678"
    assert list(loan.installments.values_list("amount", flat=True).order_by("sequence")) == [1000, 2000]


def test_it_matches_an_existing_borrower_by_external_id(lender):
    lender.post(URL, LOAN, format="json")
    response = lender.post(URL, body(external_id="L-API-2", borrower__name="王芳芳"), format="json")

    assert response.status_code == 201
    assert Borrower.objects.filter(external_id="B-API-1").count() == 1
    assert Borrower.objects.get(external_id="B-API-1").name == "王芳芳"


def test_an_existing_external_id_is_a_conflict(lender):
    assert lender.post(URL, LOAN, format="json").status_code == 201
    response = lender.post(URL, body(principal="10.00"), format="json")

    assert response.status_code == 409
    assert "L-API-1 already exists" in response.json()["detail"]
    assert response.json()["external_id"] == [response.json()["detail"]]
    assert Loan.objects.get().principal == 3000


@pytest.mark.parametrize(
    ("changes", "error_path", "fragment"),
    [
        ({"external_id": ...}, ["external_id"], "required"),
        ({"external_id": "x" * 65}, ["external_id"], "64"),
        ({"borrower__phone": "13812345678"}, ["borrower", "phone"], "E.164"),
        ({"borrower__phone": "+86123"}, ["borrower", "phone"], "not a valid phone number"),
        ({"borrower__email": "not-an-email"}, ["borrower", "email"], "email"),
        ({"borrower__language": "fr"}, ["borrower", "language"], "not a valid choice"),
        ({"borrower__timezone": "Mars/Olympus"}, ["borrower", "timezone"], "IANA"),
        ({"borrower__name": ""}, ["borrower", "name"], "blank"),
        ({"principal": 3000.5}, ["principal"], "decimal strings"),
        ({"principal": "abc"}, ["principal"], "number"),
        ({"currency": "XYZ"}, ["currency"], "ISO 4217"),
        ({"currency": "CN"}, ["currency"], "3"),
        ({"disbursed_on": "05/01/2026"}, ["disbursed_on"], "format"),
        ({"installments": []}, ["installments", "non_field_errors"], "empty"),
        ({"installments__1__amount": "0"}, ["installments", "1", "amount"], "0.01"),
        ({"installments__0__due_date": "2025-12-01"}, ["installments", "0", "due_date"], "before the disbursement"),
        ({"installments__1__due_date": "2026-02-05"}, ["installments", "1", "due_date"], "not after the previous"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(lender, changes, error_path, fragment):
    response = lender.post(URL, body(**changes), format="json")

    assert response.status_code == 400, response.json()
    node = response.json()
    for part in error_path:
        node = node[part]
    assert any(fragment.lower() in message.lower() for message in node), node
    assert not Loan.objects.exists()
    assert not Borrower.objects.exists()


@pytest.mark.parametrize("role", ["collector", "supervisor", "legal", None])
def test_roles_other_than_integration_may_not_create_loans(role):
    from tests.factories import UserFactory

    client = token_client(UserFactory(username=f"u-{role}", role=role))
    response = client.post(URL, LOAN, format="json")

    assert response.status_code == 403
    assert "cases.add_loan" in response.json()["detail"]
    assert not Loan.objects.exists()


def test_anonymous_requests_are_refused(client):
    response = client.post(URL, LOAN, content_type="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert not Loan.objects.exists()


def test_it_reads_a_loan_with_balance_days_past_due_and_its_case(lender, time_machine):
    time_machine.move_to(dt.datetime(2026, 2, 15, 12, 0, tzinfo=dt.UTC))
    case = make_case()
    loan = case.loan
    Installment.objects.filter(loan=loan).update(paid_amount=250)

    response = lender.get(f"{URL}{loan.external_id}/")

    assert response.status_code == 200
    data = response.json()
    assert data["case"] == case.pk
    assert data["outstanding"] == "750.00"
    assert data["days_past_due"] == (dt.date(2026, 2, 15) - dt.date(2026, 1, 5)).days
    assert data["installments"] == [{"due_date": "2026-01-05", "amount": "1000.00", "paid_amount": "250.00"}]


def test_an_unknown_loan_is_404(lender):
    assert lender.get(f"{URL}NOPE/").status_code == 404


def test_a_collector_reads_the_loans_of_their_cases_only(collector, case_of, case_of_other):
    client = token_client(collector)

    assert client.get(f"{URL}{case_of.loan.external_id}/").status_code == 200
    response = client.get(f"{URL}{case_of_other.loan.external_id}/")
    assert response.status_code == 404
    assert client.get(f"{URL}{loan_with_schedule([dt.date(2026, 1, 1)]).external_id}/").status_code == 404


def test_users_without_a_role_may_not_read_loans(outsider):
    loan = loan_with_schedule([dt.date(2026, 1, 1)])
    response = token_client(outsider).get(f"{URL}{loan.external_id}/")

    assert response.status_code == 403
    assert "cases.view_loan" in response.json()["detail"]


@pytest.mark.parametrize("installments", [1, 12])
def test_reading_a_loan_takes_a_fixed_number_of_queries(lender, django_assert_num_queries, installments):
    loan = loan_with_schedule([dt.date(2026, 1, 1) + dt.timedelta(days=31 * n) for n in range(installments)])
    lender.get(f"{URL}{loan.external_id}/")

    # token+user, user permissions, group permissions, the loan (live case annotated), its
    # installments, the balance
    with django_assert_num_queries(6):
        response = lender.get(f"{URL}{loan.external_id}/")
    assert len(response.json()["installments"]) == installments
