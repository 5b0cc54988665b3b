"""My queue: only my live cases, most urgent first, filters, pager, fixed query count."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from cases.models import CaseStatus, PromiseStatus, PromiseToPay
from tests.factories import CaseFactory, UserFactory, stage

pytestmark = pytest.mark.django_db
QUEUE = reverse("queue")


@pytest.fixture
def collector():
    return UserFactory(username="collector-a", role="collector")


@pytest.fixture
def other_collector():
    return UserFactory(username="collector-b", role="collector")


def case_ids(response) -> list[int]:
    return [case.pk for case in response.context["page"].object_list]


def test_it_sends_anonymous_users_to_the_login_page(client):
    response = client.get(QUEUE)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={QUEUE}"


def test_it_refuses_post(client, collector):
    client.force_login(collector)

    assert client.post(QUEUE).status_code == 405


def test_it_lists_only_my_live_cases(client, collector, other_collector):
    mine = CaseFactory(assigned_to=collector)
    on_hold = CaseFactory(assigned_to=collector, status=CaseStatus.ON_HOLD)
    CaseFactory(assigned_to=collector, status=CaseStatus.RESOLVED)
    CaseFactory(assigned_to=other_collector)
    CaseFactory(assigned_to=None)
    client.force_login(collector)

    response = client.get(QUEUE)

    assert response.status_code == 200
    assert set(case_ids(response)) == {mine.pk, on_hold.pk}


def test_a_supervisor_sees_only_the_cases_assigned_to_them_here(client, collector):
    supervisor = UserFactory(username="boss", role="supervisor")
    CaseFactory(assigned_to=collector)
    client.force_login(supervisor)

    assert case_ids(client.get(QUEUE)) == []


def test_it_sorts_by_priority_then_next_action_due(client, collector):
    low = CaseFactory(assigned_to=collector, priority=1, next_action_on=dt.date(2026, 11, 1))
    high_later = CaseFactory(assigned_to=collector, priority=9, next_action_on=dt.date(2026, 11, 20))
    high_sooner = CaseFactory(assigned_to=collector, priority=9, next_action_on=dt.date(2026, 11, 10))
    high_none = CaseFactory(assigned_to=collector, priority=9, next_action_on=None)
    client.force_login(collector)

    assert case_ids(client.get(QUEUE)) == [high_sooner.pk, high_later.pk, high_none.pk, low.pk]


def test_it_filters_by_stage_dpd_and_broken_promise(client, collector):
    warning = CaseFactory(assigned_to=collector, stage=stage("warning"), days_past_due=3)
    phone = CaseFactory(assigned_to=collector, stage=stage("phone"), days_past_due=15)
    agency = CaseFactory(assigned_to=collector, stage=stage("third_party"), days_past_due=45)
    PromiseToPay.objects.create(
        case=agency, amount=Decimal("10"), due_date=dt.date(2026, 10, 1), status=PromiseStatus.BROKEN
    )
    client.force_login(collector)

    assert case_ids(client.get(QUEUE, {"stage": "phone"})) == [phone.pk]
    assert set(case_ids(client.get(QUEUE, {"min_dpd": 10}))) == {phone.pk, agency.pk}
    assert case_ids(client.get(QUEUE, {"min_dpd": 10, "max_dpd": 20})) == [phone.pk]
    assert case_ids(client.get(QUEUE, {"max_dpd": 5})) == [warning.pk]
    response = client.get(QUEUE, {"broken_promise": "on"})
    assert case_ids(response) == [agency.pk]
    assert "Broken promise" in response.content.decode()


def test_a_bad_filter_says_which_field_and_shows_the_unfiltered_queue(client, collector):
    case = CaseFactory(assigned_to=collector, days_past_due=3)
    client.force_login(collector)

    response = client.get(QUEUE, {"min_dpd": 20, "max_dpd": 10})

    assert response.status_code == 200
    assert "max_dpd" in response.context["form"].errors
    assert "Must be at least the lower bound (20)." in response.content.decode()
    assert case_ids(response) == [case.pk]


def test_an_unknown_stage_is_a_field_error(client, collector):
    client.force_login(collector)

    response = client.get(QUEUE, {"stage": "nonsense"})

    assert "stage" in response.context["form"].errors


def test_a_row_links_to_the_case_and_shows_the_pending_promise(client, collector):
    case = CaseFactory(assigned_to=collector, loan__borrower__name="Wang Fang")
    PromiseToPay.objects.create(case=case, amount=Decimal("300.00"), due_date=dt.date(2026, 12, 1))
    client.force_login(collector)

    html = client.get(QUEUE).content.decode()

    assert reverse("case-detail", kwargs={"case_id": case.pk}) in html
    assert "Wang Fang" in html
    assert "300.00 by 2026-12-01" in html


def test_it_pages_25_at_a_time_keeping_the_filters(client, collector):
    for n in range(30):
        CaseFactory(assigned_to=collector, priority=100 - n, days_past_due=10)
    client.force_login(collector)

    first = client.get(QUEUE, {"min_dpd": 5})
    second = client.get(QUEUE, {"min_dpd": 5, "page": 2})

    assert len(case_ids(first)) == 25
    assert len(case_ids(second)) == 5
    assert set(case_ids(first)).isdisjoint(case_ids(second))
    assert "min_dpd=5&amp;page=2" in first.content.decode()


def test_htmx_filtering_answers_with_the_results_only(client, collector):
    CaseFactory(assigned_to=collector)
    client.force_login(collector)

    response = client.get(QUEUE, headers={"HX-Request": "true", "HX-Target": "queue-results"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert "<table" in html


# Session, user, the stages (filter choices), permissions (user, groups), the user's groups
# (cases_for_user's visibility rules), the pager's
# COUNT, the page's SELECT, and the session's save (savepoint, UPDATE, release:
# SESSION_SAVE_EVERY_REQUEST).
QUEUE_QUERIES = 11


def test_the_number_of_queries_does_not_grow_with_the_cases(client, collector, django_assert_num_queries):
    client.force_login(collector)
    CaseFactory.create_batch(3, assigned_to=collector, pending_stage=stage("litigation"))
    with django_assert_num_queries(QUEUE_QUERIES):
        assert client.get(QUEUE, {"stage": "warning"}).status_code == 200

    for case in CaseFactory.create_batch(30, assigned_to=collector, pending_stage=stage("litigation")):
        PromiseToPay.objects.create(case=case, amount=Decimal("1"), due_date=dt.date(2026, 12, 1))

    with django_assert_num_queries(QUEUE_QUERIES):
        assert client.get(QUEUE).status_code == 200
