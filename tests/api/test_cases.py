"""GET /api/v1/cases/, /cases/{id}/ and /cases/{id}/events/: filters, visibility, query counts."""

import pytest
from django.utils import timezone

from cases.models import CaseStatus, EventKind, Hold
from cases.services import event_record
from tests.api.conftest import make_case, token_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/cases/"


def ids(response):
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def test_a_case_has_the_contract_fields(supervisor, collector):
    case = make_case(assigned_to=collector, dpd=12, outstanding="850.50")
    hold = Hold.objects.create(case=case, reason="dispute", note="disputes fees", placed_by=supervisor)

    response = token_client(supervisor).get(f"{URL}{case.pk}/")

    assert response.status_code == 200
    assert response.json() == {
        "id": case.pk,
        "loan": case.loan.external_id,
        "borrower": {"external_id": case.loan.borrower.external_id, "name": case.loan.borrower.name},
        "stage": "phone",
        "status": "open",
        "days_past_due": 12,
        "outstanding": "850.50",
        "assigned_to": "collector1",
        "opened_at": timezone.localtime(case.opened_at).isoformat(),
        "holds": [
            {
                "id": hold.pk,
                "reason": "dispute",
                "note": "disputes fees",
                "starts_at": timezone.localtime(hold.starts_at).isoformat(),
                "until": None,
                "released_at": None,
                "active": True,
            }
        ],
    }


def test_the_list_is_paginated(supervisor):
    cases = [make_case() for _ in range(3)]

    response = token_client(supervisor).get(URL, {"page_size": 2})

    data = response.json()
    assert data["count"] == 3
    assert [row["id"] for row in data["results"]] == [c.pk for c in cases[:2]]
    assert data["next"].endswith("page=2&page_size=2")
    assert data["previous"] is None


def test_a_collector_lists_only_assigned_cases(collector, case_of, case_of_other):
    assert ids(token_client(collector).get(URL)) == [case_of.pk]


def test_a_supervisor_lists_every_case(supervisor, case_of, case_of_other):
    assert ids(token_client(supervisor).get(URL)) == [case_of.pk, case_of_other.pk]


def test_filters(supervisor, collector, other_collector):
    phone = make_case(assigned_to=collector, stage="phone", dpd=10)
    third = make_case(assigned_to=other_collector, stage="third_party", dpd=40)
    held = make_case(stage="reminder", dpd=5, status=CaseStatus.ON_HOLD)
    client = token_client(supervisor)

    assert ids(client.get(URL, {"stage": "third_party"})) == [third.pk]
    assert ids(client.get(URL, {"status": "on_hold"})) == [held.pk]
    assert ids(client.get(URL, {"assigned_to": "collector1"})) == [phone.pk]
    assert ids(client.get(URL, {"min_dpd": 10})) == [phone.pk, third.pk]
    assert ids(client.get(URL, {"max_dpd": 10})) == [phone.pk, held.pk]
    assert ids(client.get(URL, {"min_dpd": 6, "max_dpd": 39})) == [phone.pk]
    assert ids(client.get(URL, {"loan": held.loan.external_id})) == [held.pk]
    assert ids(client.get(URL, {"stage": "litigation"})) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "sleeping"}, "status"), ({"min_dpd": "many"}, "min_dpd"), ({"max_dpd": "-1"}, "max_dpd")],
)
def test_bad_filters_are_400_naming_the_filter(supervisor, params, field):
    response = token_client(supervisor).get(URL, params)

    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("rows", [1, 20])
def test_the_list_takes_a_fixed_number_of_queries(supervisor, collector, django_assert_num_queries, rows):
    for _ in range(rows):
        case = make_case(assigned_to=collector)
        Hold.objects.create(case=case, reason="dispute")
    client = token_client(supervisor)
    client.get(URL)  # warm the content-type and permission caches

    # token+user, user permissions, group permissions, count, page, holds
    with django_assert_num_queries(6):
        response = client.get(URL)
    assert len(response.json()["results"]) == rows


@pytest.mark.parametrize("rows", [1, 20])
def test_a_collectors_list_takes_a_fixed_number_of_queries(collector, django_assert_num_queries, rows):
    for _ in range(rows):
        make_case(assigned_to=collector)
    client = token_client(collector)
    client.get(URL)

    # token+user, user permissions, group permissions, the visibility rules' groups, count, page, holds
    with django_assert_num_queries(7):
        response = client.get(URL)
    assert len(response.json()["results"]) == rows


def test_someone_elses_case_is_404_like_an_unknown_one(collector, case_of_other):
    client = token_client(collector)

    for url in (f"{URL}{case_of_other.pk}/", f"{URL}{case_of_other.pk}/events/", f"{URL}999999/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json() == {"detail": "Not found, or not visible to you."}


def test_users_without_a_role_may_not_list_cases(outsider):
    response = token_client(outsider).get(URL)

    assert response.status_code == 403
    assert "cases.view_case" in response.json()["detail"]


def test_session_authentication_works_too(client, collector, case_of):
    client.force_login(collector)
    response = client.get(URL)

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [case_of.pk]


def test_anonymous_is_refused(client):
    assert client.get(URL).status_code == 401


def test_events_are_the_timeline_in_order(collector, case_of):
    event_record(case=case_of, kind=EventKind.OPENED, detail={"days_past_due": 1})
    event_record(case=case_of, kind=EventKind.NOTE, actor=collector, detail={"text": "called twice"})

    response = token_client(collector).get(f"{URL}{case_of.pk}/events/")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["kind"], r["actor"], r["detail"]) for r in rows] == [
        ("opened", "system", {"days_past_due": 1}),
        ("note", "collector1", {"text": "called twice"}),
    ]
    assert set(rows[0]) == {"id", "at", "kind", "actor", "detail"}


@pytest.mark.parametrize("rows", [1, 20])
def test_events_take_a_fixed_number_of_queries(collector, case_of, django_assert_num_queries, rows):
    other = UserFactory(username="someone")
    for n in range(rows):
        event_record(case=case_of, kind=EventKind.NOTE, actor=collector if n % 2 else other, detail={"n": n})
    client = token_client(collector)
    client.get(f"{URL}{case_of.pk}/events/")

    # token+user, permissions x2, visibility groups, the case, count, page (actors joined)
    with django_assert_num_queries(7):
        response = client.get(f"{URL}{case_of.pk}/events/")
    assert len(response.json()["results"]) == rows


def test_counts_past_the_exact_limit_are_estimates_and_paging_still_ends_right(supervisor, monkeypatch):
    monkeypatch.setattr("cases.api_support.EXACT_COUNT_LIMIT", 5)
    cases = [make_case() for _ in range(8)]
    client = token_client(supervisor)

    first = client.get(URL, {"page_size": 3})
    assert first["X-Count-Estimated"] == "true"
    assert first.json()["count"] >= 6
    assert [r["id"] for r in first.json()["results"]] == [c.pk for c in cases[:3]]
    assert first.json()["next"].endswith("page=2&page_size=3")
    second = client.get(URL, {"page_size": 3, "page": 2})
    assert second.json()["next"].endswith("page=3&page_size=3")
    last = client.get(URL, {"page_size": 3, "page": 3})
    assert [r["id"] for r in last.json()["results"]] == [c.pk for c in cases[6:]]
    assert last.json()["next"] is None
    assert last.json()["previous"].endswith("page=2&page_size=3")
    assert client.get(URL, {"page_size": 3, "page": 4}).status_code == 404

    exact = client.get(URL, {"page_size": 3, "max_dpd": 10, "loan": cases[0].loan.external_id})
    assert exact.json()["count"] == 1
    assert "X-Count-Estimated" not in exact


def test_an_agency_user_sees_only_its_current_placements():
    from legal.models import Agency, AgencyMember, Placement

    agency, other_agency = Agency.objects.create(name="Alpha 催收"), Agency.objects.create(name="Beta")
    user = UserFactory(username="agent", role="agency")
    AgencyMember.objects.create(user=user, agency=agency)
    placed, elsewhere, recalled, unplaced = (make_case(stage="third_party", dpd=40) for _ in range(4))
    Placement.objects.create(case=placed, agency=agency, balance_placed=1000)
    Placement.objects.create(case=elsewhere, agency=other_agency, balance_placed=1000)
    Placement.objects.create(
        case=recalled, agency=agency, balance_placed=1000, recalled_at=timezone.now(), recall_reason="manual"
    )
    client = token_client(user)

    assert ids(client.get(URL)) == [placed.pk]
    assert client.get(f"{URL}{placed.pk}/").status_code == 200
    for case in (elsewhere, recalled, unplaced):
        assert client.get(f"{URL}{case.pk}/").status_code == 404
