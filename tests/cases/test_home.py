"""The home page: the cases the user may see, most overdue first, in a fixed number of queries."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases.models import CaseStatus
from tests.factories import CaseFactory, UserFactory, stage

pytestmark = pytest.mark.django_db
HOME = reverse("home")


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


def loan_ids(response) -> set[str]:
    return {case.loan.external_id for case in response.context["page"].object_list}


def test_it_sends_anonymous_users_to_the_login_page(client):
    response = client.get(HOME)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={HOME}"


def test_it_shows_a_collector_only_their_own_cases(client, collector, other_collector):
    mine = CaseFactory.create_batch(2, assigned_to=collector)
    CaseFactory(assigned_to=other_collector)
    CaseFactory(assigned_to=None)
    client.force_login(collector)

    response = client.get(HOME)

    assert response.status_code == 200
    assert loan_ids(response) == {c.loan.external_id for c in mine}
    assert "Cases assigned to you" in response.content.decode()


def test_it_shows_a_supervisor_every_case(client, supervisor, collector, other_collector):
    cases = [CaseFactory(assigned_to=collector), CaseFactory(assigned_to=other_collector), CaseFactory()]
    client.force_login(supervisor)

    response = client.get(HOME)

    assert loan_ids(response) == {c.loan.external_id for c in cases}
    assert response.context["page"].paginator.count == 3


def test_it_shows_a_user_without_a_role_nothing(client, outsider, collector):
    CaseFactory(assigned_to=collector)
    client.force_login(outsider)

    response = client.get(HOME)

    assert loan_ids(response) == set()
    assert "No cases to show." in response.content.decode()


def test_it_refuses_post(client, collector):
    client.force_login(collector)

    assert client.post(HOME).status_code == 405


def test_a_row_shows_the_loan_borrower_stage_status_days_outstanding_and_collector(client, supervisor, collector):
    case = CaseFactory(
        assigned_to=collector,
        stage=stage("third_party"),
        pending_stage=stage("litigation"),
        status=CaseStatus.AWAITING_APPROVAL,
        days_past_due=97,
        outstanding=Decimal("12345.60"),
        loan__currency="USD",
        loan__borrower__name="Emily Carter",
    )
    client.force_login(supervisor)

    html = client.get(HOME).content.decode()

    for text in (
        case.loan.external_id,
        "Emily Carter",
        "Third-party agency",
        "→ Litigation",
        "Awaiting approval",
        ">97<",
        "12,345.60",
        "USD",
        "Ann Archer",
    ):
        assert text in html, text


def test_stage_names_follow_the_users_language(client, supervisor):
    # A signed-in user's saved language wins over the browser's Accept-Language.
    CaseFactory(stage=stage("warning"))
    client.force_login(supervisor)

    assert "Warning" in client.get(HOME, headers={"accept-language": "zh-CN"}).content.decode()
    supervisor.language = "zh-hans"
    supervisor.save(update_fields=["language"])
    assert "预警" in client.get(HOME, headers={"accept-language": "en"}).content.decode()


def test_it_lists_the_most_overdue_first_fifty_a_page(client, supervisor):
    for days in range(1, 56):
        CaseFactory(days_past_due=days)
    client.force_login(supervisor)

    first = client.get(HOME).context["page"]
    second = client.get(HOME, {"page": 2}).context["page"]

    assert [c.days_past_due for c in first.object_list] == list(range(55, 5, -1))
    assert [c.days_past_due for c in second.object_list] == [5, 4, 3, 2, 1]
    assert client.get(HOME, {"page": "nonsense"}).status_code == 200


def count_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(HOME)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("role", ["collector", "supervisor"])
def test_the_number_of_queries_does_not_grow_with_the_cases(client, role):
    user = UserFactory(username=f"the-{role}", role=role)
    client.force_login(user)
    CaseFactory.create_batch(5, assigned_to=user, pending_stage=stage("litigation"))
    with_5 = count_queries(client)
    CaseFactory.create_batch(35, assigned_to=user, pending_stage=stage("litigation"))

    with_40 = count_queries(client)

    assert with_5 == with_40
    # Session, user, the user's and their groups' permissions, the pager's COUNT, the page,
    # and the session's save (savepoint, UPDATE, release: SESSION_SAVE_EVERY_REQUEST); a
    # collector's cases_for_user also reads their groups (the visibility rules).
    assert with_40 == {"collector": 10, "supervisor": 9}[role]


def test_the_login_page_renders_and_logs_a_user_in(client, collector):
    page = client.get(reverse("login"))

    assert page.status_code == 200
    assert 'name="username"' in page.content.decode()
    assert 'name="password"' in page.content.decode()

    response = client.post(reverse("login"), {"username": "collector-a", "password": "pass-word-123"})

    assert response.status_code == 302
    assert response["Location"] == HOME
    assert client.get(HOME).status_code == 200


def test_the_login_page_says_when_the_password_is_wrong(client, collector):
    response = client.post(reverse("login"), {"username": "collector-a", "password": "wrong"})

    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert client.get(HOME).status_code == 302
