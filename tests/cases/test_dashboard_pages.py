"""Supervisor pages: the dashboard and its CSVs, the team case list with bulk reassignment,
the approvals waiting. Who may see them, what they show, and their fixed query counts."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases.models import (
    BucketRoll,
    Case,
    CaseEvent,
    CaseStatus,
    DailyActivity,
    EventKind,
    StageSnapshot,
)
from cases.selectors import business_date
from cases.services.reporting import dashboard_refresh
from tests.factories import CaseFactory, UserFactory, stage

pytestmark = pytest.mark.django_db
TODAY = business_date()


@pytest.fixture
def supervisor():
    return UserFactory(username="sue", role="supervisor")


@pytest.fixture
def collector():
    return UserFactory(username="carl", role="collector")


@pytest.fixture
def other_collector():
    return UserFactory(username="cora", role="collector")


@pytest.fixture
def sup_client(client, supervisor):
    client.force_login(supervisor)
    return client


def make_cases(count, **kwargs):
    return [CaseFactory(**kwargs) for _ in range(count)]


def waiting_case(**kwargs):
    return CaseFactory(
        stage=stage("third_party"),
        pending_stage=stage("litigation"),
        status=CaseStatus.AWAITING_APPROVAL,
        days_past_due=95,
        approval_requested_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        **kwargs,
    )


# --- who may see what ------------------------------------------------------------------------

SUPERVISOR_PAGES = [
    ("dashboard", {}),
    ("dashboard_csv", {"key": "funnel"}),
    ("team_cases", {}),
    ("approvals", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), SUPERVISOR_PAGES)
def test_it_refuses_collectors(client, collector, name, kwargs):
    client.force_login(collector)
    assert client.get(reverse(name, kwargs=kwargs)).status_code == 403


@pytest.mark.parametrize(("name", "kwargs"), SUPERVISOR_PAGES)
def test_it_sends_strangers_to_the_login(client, name, kwargs):
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("name", "kwargs"), SUPERVISOR_PAGES)
def test_it_serves_supervisors(sup_client, name, kwargs):
    assert sup_client.get(reverse(name, kwargs=kwargs)).status_code == 200


def test_a_collector_can_neither_reassign_nor_approve(client, collector, other_collector):
    case = CaseFactory(assigned_to=other_collector)
    waiting = waiting_case()
    client.force_login(collector)

    reassign = client.post(reverse("team_cases"), {"cases": [case.pk], "to_user": collector.pk})
    approve = client.post(reverse("approval_decide", args=[waiting.pk]), {"decision": "approve"})

    assert (reassign.status_code, approve.status_code) == (403, 403)
    case.refresh_from_db()
    waiting.refresh_from_db()
    assert case.assigned_to == other_collector
    assert waiting.status == CaseStatus.AWAITING_APPROVAL


# --- the dashboard -----------------------------------------------------------------------------


def test_the_dashboard_shows_the_refreshed_figures_with_their_definitions(sup_client):
    make_cases(3, stage=stage("warning"), days_past_due=5, outstanding=Decimal("1000.00"))
    make_cases(2, stage=stage("phone"), days_past_due=40, outstanding=Decimal("2500.00"))
    dashboard_refresh()

    response = sup_client.get(reverse("dashboard"))

    html = response.content.decode()
    assert response.status_code == 200
    funnel = {row[0]: row[1:] for row in response.context["panels"][0]["panel"].display_rows}
    assert funnel["Warning"] == ["3", "3,000.00"]
    assert funnel["Phone collection"] == ["2", "5,000.00"]
    aging = {row[0]: row[1:] for row in response.context["panels"][1]["panel"].display_rows}
    assert aging["M1 (1-30 days)"] == ["3", "60.0%", "3,000.00", "37.5%"]
    assert aging["M2 (31-60 days)"] == ["2", "40.0%", "5,000.00", "62.5%"]
    # Every panel's definition is on the page, and a chart of its numbers.
    assert "M1 is 1-30 days, M2 31-60" in html
    assert "divided by all contact attempts logged" in html
    assert html.count('class="dashboard-chart"') == 7
    assert "vendor/chartjs/chart.umd.js" in html
    assert "<script>" not in html and "onclick" not in html


def test_the_dashboard_refuses_a_backward_range_and_names_the_field(sup_client):
    response = sup_client.get(reverse("dashboard"), {"start": "2026-03-10", "end": "2026-03-01"})

    assert response.status_code == 400
    assert "From: The start of the range must be on or before its end." in response.content.decode()


def test_the_dashboard_refuses_a_date_that_is_not_one(sup_client):
    response = sup_client.get(reverse("dashboard_csv", args=["funnel"]), {"end": "yesterday"})

    assert response.status_code == 400
    assert response.content.decode().startswith("end: Enter a valid date.")


def test_the_dashboard_sends_the_same_queries_for_ten_and_a_hundred_cases(sup_client, django_assert_num_queries):
    waiting_case()
    make_cases(9, days_past_due=5)
    dashboard_refresh()
    with CaptureQueriesContext(connection) as small:
        assert sup_client.get(reverse("dashboard")).status_code == 200
    make_cases(90, stage=stage("reminder"), days_past_due=50)
    for _ in range(5):
        waiting_case()
    dashboard_refresh()

    # Besides the session, user and permissions: stages, snapshot x2, rates x2, rolls, days,
    # collectors, delivery, approvals and their count, the refresh row (12).
    with django_assert_num_queries(len(small)):
        response = sup_client.get(reverse("dashboard"))
    assert len(small) <= 12 + 8
    assert response.context["approvals_count"].value == 6


# --- figures: hand-checked ---------------------------------------------------------------------


def test_the_rates_follow_their_definitions(sup_client):
    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 31)
    StageSnapshot.objects.create(
        date=dt.date(2026, 2, 28), stage_code="warning", bucket="m1", case_count=10, balance=Decimal("10000.00")
    )
    DailyActivity.objects.create(
        date=dt.date(2026, 3, 5),
        cases_opened=6,
        cases_cured=4,
        promises_kept=3,
        promises_broken=1,
        contacts=15,
        right_party_contacts=3,
        amount_collected=Decimal("1500.00"),
        escalations=7,
    )
    DailyActivity.objects.create(
        date=dt.date(2026, 3, 6),
        cases_opened=4,
        cases_cured=1,
        contacts=5,
        right_party_contacts=2,
        amount_collected=Decimal("1000.00"),
    )
    # Outside the range: not counted.
    DailyActivity.objects.create(date=dt.date(2026, 4, 1), cases_cured=50, contacts=50)

    response = sup_client.get(reverse("dashboard_csv", args=["rates"]), {"start": start, "end": end})

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["Figure", "Value", "Numerator / denominator", "Definition"]
    values = {row[0]: row[1:3] for row in rows[1:]}
    assert values["Cure rate"] == ["25.00", "5 / 20"]  # 4 + 1 cured of 10 at the start + 10 opened
    assert values["Promise-kept rate"] == ["75.00", "3 / 4"]
    assert values["Right-party-contact rate"] == ["25.00", "5 / 20"]
    assert values["Recovery rate"] == ["25.00", "2,500.00 / 10,000.00"]
    assert values["Escalations in the range"][0] == "7"


def test_escalations_today_and_this_week_count_from_monday(sup_client):
    monday = TODAY - dt.timedelta(days=TODAY.weekday())
    DailyActivity.objects.create(date=TODAY, escalations=3)
    if monday != TODAY:
        DailyActivity.objects.create(date=monday, escalations=4)
    DailyActivity.objects.create(date=monday - dt.timedelta(days=1), escalations=100)

    response = sup_client.get(reverse("dashboard_csv", args=["rates"]))

    values = {row[0]: row[1] for row in csv.reader(io.StringIO(response.content.decode("utf-8-sig")))}
    assert values["Escalations today"] == "3"
    assert values["Escalations this week"] == ("3" if monday == TODAY else "7")


def test_roll_rates_are_shares_of_the_bucket_a_month_before(sup_client):
    march = dt.date(2026, 3, 1)
    for to_bucket, count in (("m1", 6), ("m2", 3), ("cured", 1)):
        BucketRoll.objects.create(month=march, from_bucket="m1", to_bucket=to_bucket, case_count=count)
    BucketRoll.objects.create(month=march, from_bucket="m2", to_bucket="m3", case_count=2)

    response = sup_client.get(reverse("dashboard_csv", args=["roll_rates"]), {"start": march, "end": "2026-03-31"})

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [
        ["Month", "From", "To", "Cases", "Roll rate"],
        ["2026-03", "M1 (1-30 days)", "M1 (1-30 days)", "6", "60.00"],
        ["2026-03", "M1 (1-30 days)", "M2 (31-60 days)", "3", "30.00"],
        ["2026-03", "M1 (1-30 days)", "Cured", "1", "10.00"],
        ["2026-03", "M2 (31-60 days)", "M3 (61-90 days)", "2", "100.00"],
    ]
    page = sup_client.get(reverse("dashboard"), {"start": march, "end": "2026-03-31"})
    rolls = next(p["panel"] for p in page.context["panels"] if p["panel"].key == "roll_rates")
    forward = dict(rolls.chart.datasets)
    assert [p.number() for p in forward["M1 → M2"]] == [30.0]
    assert [p.number() for p in forward["M3 → M3+"]] == [None]


def test_the_funnel_csv_lists_every_stage_in_order(sup_client):
    make_cases(2, stage=stage("reminder"), days_past_due=6, outstanding=Decimal("100.50"))
    dashboard_refresh()

    response = sup_client.get(reverse("dashboard_csv", args=["funnel"]))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.content.startswith("\ufeff".encode())
    assert list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")))) == [
        ["Stage", "Cases", "Balance"],
        ["Warning", "0", "0.00"],
        ["Reminder", "2", "201.00"],
        ["Phone collection", "0", "0.00"],
        ["Third-party agency", "0", "0.00"],
        ["Litigation", "0", "0.00"],
    ]


def test_an_unknown_table_is_404(sup_client):
    assert sup_client.get(reverse("dashboard_csv", args=["nothing"])).status_code == 404


def test_the_collectors_csv_credits_each_collector(sup_client, collector):
    case = CaseFactory(assigned_to=collector)
    from cases.models import ContactAttempt

    ContactAttempt.objects.create(case=case, channel="phone", outcome="right_party_contact", collector=collector)
    ContactAttempt.objects.create(case=case, channel="phone", outcome="no_answer", collector=collector)
    dashboard_refresh()

    response = sup_client.get(reverse("dashboard_csv", args=["collectors"]))

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[1] == ["carl", "2", "1", "50.00", "0", "0"]


def test_the_delivery_panel_counts_messages_by_status_and_reason(sup_client):
    from notifications.models import OutboundMessage

    case = CaseFactory()
    for n, (status, reason) in enumerate((("delivered", ""), ("suppressed", "opt_out"), ("suppressed", "opt_out"))):
        OutboundMessage.objects.create(
            case=case,
            borrower=case.loan.borrower,
            channel="sms",
            to="+8613800000000",
            language="zh-hans",
            action="sms",
            idempotency_key=f"k{n}",
            body="x",
            status=status,
            reason=reason,
        )

    response = sup_client.get(reverse("dashboard_csv", args=["delivery"]))

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [
        ["Channel", "Status", "Reason", "Messages"],
        ["SMS", "Delivered", "", "1"],
        ["SMS", "Suppressed", "The borrower opted out of this channel", "2"],
    ]


# --- the team list and bulk reassignment ---------------------------------------------------------


def test_the_team_list_filters_by_stage_status_collector_and_dpd(sup_client, collector):
    mine = CaseFactory(stage=stage("phone"), days_past_due=20, assigned_to=collector)
    CaseFactory(stage=stage("phone"), days_past_due=50, assigned_to=collector)
    CaseFactory(stage=stage("warning"), days_past_due=20, assigned_to=collector)
    CaseFactory(stage=stage("phone"), days_past_due=20)

    response = sup_client.get(
        reverse("team_cases"),
        {"stage": "phone", "status": "open", "collector": collector.pk, "min_dpd": 10, "max_dpd": 30},
    )

    assert [c.pk for c in response.context["page"].object_list] == [mine.pk]
    unassigned = sup_client.get(reverse("team_cases"), {"collector": "none"})
    assert [c.assigned_to for c in unassigned.context["page"].object_list] == [None]


def test_the_team_list_names_a_bad_filter(sup_client):
    response = sup_client.get(reverse("team_cases"), {"min_dpd": 30, "max_dpd": 10})

    assert response.status_code == 400
    assert "The upper bound of days past due must not be below the lower bound." in response.content.decode()


def test_the_team_list_sends_the_same_queries_for_ten_and_a_hundred_cases(
    sup_client, collector, django_assert_num_queries
):
    make_cases(10, assigned_to=collector)
    with CaptureQueriesContext(connection) as small:
        sup_client.get(reverse("team_cases"), {"collector": collector.pk})
    make_cases(90, assigned_to=collector)

    # Besides the session, user and permissions: stages, collectors, the page, the bounded count.
    with django_assert_num_queries(len(small)):
        response = sup_client.get(reverse("team_cases"), {"collector": collector.pk})
    assert len(small) <= 4 + 8
    assert response.context["matching"].value == 100


def test_bulk_reassignment_moves_the_ticked_cases_and_writes_their_events(
    sup_client, supervisor, collector, other_collector
):
    cases = make_cases(3, assigned_to=collector)
    untouched = CaseFactory(assigned_to=collector)

    response = sup_client.post(
        reverse("team_cases") + "?stage=warning",
        {"cases": [c.pk for c in cases], "to_user": other_collector.pk},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("team_cases") + "?stage=warning"
    assert set(Case.objects.filter(assigned_to=other_collector).values_list("pk", flat=True)) == {c.pk for c in cases}
    assert Case.objects.get(pk=untouched.pk).assigned_to == collector
    events = CaseEvent.objects.filter(kind=EventKind.ASSIGNED, case__in=cases)
    assert {(e.actor_id, e.detail["to"]) for e in events} == {(supervisor.pk, other_collector.pk)}
    page = sup_client.get(response["Location"])
    assert "3 of 3 cases reassigned to cora." in page.content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"to_user": "COLLECTOR"}, "Cases: Tick at least one case to reassign."),
        ({"cases": ["CASE"]}, "Reassign to: Choose the collector to give the cases to."),
        ({"cases": ["CASE"], "to_user": "SUPERVISOR"}, "Reassign to: Choose an active collector."),
        ({"cases": ["999999"], "to_user": "COLLECTOR"}, "Cases: Case 999999 does not exist."),
    ],
)
def test_bulk_reassignment_refuses_bad_input_and_changes_nothing(
    sup_client, supervisor, collector, other_collector, data, message
):
    case = CaseFactory(assigned_to=other_collector)
    names = {"COLLECTOR": str(collector.pk), "SUPERVISOR": str(supervisor.pk), "CASE": str(case.pk)}
    post = {
        key: [names.get(v, v) for v in value] if isinstance(value, list) else names[value]
        for key, value in data.items()
    }

    response = sup_client.post(reverse("team_cases"), post)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert Case.objects.get(pk=case.pk).assigned_to == other_collector
    assert not CaseEvent.objects.filter(kind=EventKind.ASSIGNED).exists()


# --- approvals -----------------------------------------------------------------------------------


def test_a_supervisor_approves_from_the_list(sup_client):
    case = waiting_case()

    response = sup_client.post(
        reverse("approval_decide", args=[case.pk]), {"decision": "approve", "next": "/supervisor/dashboard/"}
    )

    assert response.status_code == 302 and response["Location"] == "/supervisor/dashboard/"
    case.refresh_from_db()
    assert (case.status, case.stage.code, case.pending_stage) == (CaseStatus.OPEN, "litigation", None)


def test_declining_needs_a_reason_and_keeps_the_case_waiting_without_one(sup_client):
    case = waiting_case()

    refused = sup_client.post(
        reverse("approval_decide", args=[case.pk]), {"decision": "decline", "reason": ""}, follow=True
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.AWAITING_APPROVAL
    assert "Reason: Say why the escalation is declined." in refused.content.decode()

    sup_client.post(reverse("approval_decide", args=[case.pk]), {"decision": "decline", "reason": "documents missing"})
    case.refresh_from_db()
    assert (case.status, case.stage.code) == (CaseStatus.OPEN, "third_party")
    assert CaseEvent.objects.get(case=case, kind=EventKind.REJECTED).detail["reason"] == "documents missing"


def test_four_eyes_is_told_to_the_supervisor(sup_client, supervisor):
    case = waiting_case(approval_requested_by=supervisor)

    page = sup_client.post(reverse("approval_decide", args=[case.pk]), {"decision": "approve"}, follow=True)

    assert "another supervisor must approve" in page.content.decode()
    case.refresh_from_db()
    assert case.status == CaseStatus.AWAITING_APPROVAL


def test_an_unknown_case_is_404_and_an_offsite_next_is_ignored(sup_client):
    assert sup_client.post(reverse("approval_decide", args=[999999]), {"decision": "approve"}).status_code == 404
    case = waiting_case()
    response = sup_client.post(
        reverse("approval_decide", args=[case.pk]), {"decision": "approve", "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("approvals")


def test_the_approvals_page_sends_the_same_queries_for_ten_and_a_hundred(sup_client, django_assert_num_queries):
    for _ in range(10):
        waiting_case()
    with CaptureQueriesContext(connection) as small:
        sup_client.get(reverse("approvals"))
    for _ in range(90):
        waiting_case()

    with django_assert_num_queries(len(small)):
        response = sup_client.get(reverse("approvals"))
    assert response.context["waiting"].value == 100
    assert len(response.context["page"].object_list) == 50
    assert response.context["page"].has_next


def test_the_team_list_pages_without_counting_every_case(sup_client, monkeypatch):
    import cases.selectors_dashboard as selectors

    monkeypatch.setattr(selectors, "COUNT_LIMIT", 5)
    cases = make_cases(7)
    ids = sorted((c.pk for c in cases), reverse=True)

    first = sup_client.get(reverse("team_cases"), {"status": "open"})
    monkeypatch.setattr("cases.views_dashboard.CASES_PER_PAGE", 3)
    second = sup_client.get(reverse("team_cases"), {"status": "open", "page": "2"})
    past_the_end = sup_client.get(reverse("team_cases"), {"status": "open", "page": "9"})

    assert "More than 5 cases match" in first.content.decode()
    assert [c.pk for c in second.context["page"].object_list] == ids[3:6]
    assert second.context["page"].has_next and second.context["page"].has_previous
    assert "Page 2 (cases 4 to 6)" in second.content.decode()
    assert "status=open&amp;page=3" in second.content.decode()
    assert past_the_end.context["page"].object_list == []
