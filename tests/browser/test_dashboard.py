"""The supervisor dashboard in real Chromium: its charts draw with no console error, and a
supervisor approves litigation from the approvals list."""

import datetime as dt
from decimal import Decimal

from django.urls import reverse
from playwright.sync_api import Page, expect

from cases.models import CaseEvent, CaseStatus, ContactAttempt, EventKind
from cases.services.reporting import dashboard_refresh
from tests.factories import CaseFactory, UserFactory, stage

PASSWORD = "pass-word-123"


def log_in(page: Page, path: str, username: str) -> None:
    page.goto(path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_the_dashboard_draws_its_charts_with_no_console_errors(page: Page, live_server):
    supervisor = UserFactory(username="sup-zhou", role="supervisor")
    collector = UserFactory(username="col-wu", role="collector")
    for code, dpd, outstanding in (("warning", 3, "800.00"), ("reminder", 6, "1200.00"), ("phone", 45, "3000.00")):
        case = CaseFactory(
            stage=stage(code), days_past_due=dpd, outstanding=Decimal(outstanding), assigned_to=collector
        )
    ContactAttempt.objects.create(case=case, channel="phone", outcome="right_party_contact", collector=collector)
    CaseEvent.objects.create(case=case, kind=EventKind.STAGE_CHANGED, detail={"from": "reminder", "to": "phone"})
    dashboard_refresh()

    log_in(page, reverse("dashboard"), supervisor.username)

    expect(page.get_by_role("heading", name="Supervisor dashboard")).to_be_visible()
    charts = page.locator("canvas.dashboard-chart")
    count = charts.count()
    assert count >= 7
    # dashboard.js marks each canvas once Chart.js has drawn it.
    expect(page.locator('canvas.dashboard-chart[data-drawn="true"]')).to_have_count(count)
    # The numbers are in the tables beside the charts.
    funnel = page.locator('table[data-panel="funnel"]')
    expect(funnel.get_by_role("row", name="Phone collection")).to_contain_text("3,000.00")
    # A drawn chart has pixels: its canvas is not blank.
    drawn = page.evaluate(
        """() => {
            const canvas = document.querySelector('#panel-funnel canvas');
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            return data.some((value, index) => index % 4 === 3 && value > 0);
        }"""
    )
    assert drawn is True
    assert page.console_errors == []

    with page.expect_download() as download:
        page.locator("#panel-funnel").get_by_role("link", name="CSV").click()
    assert download.value.suggested_filename.startswith("funnel-")


def test_a_supervisor_approves_litigation_from_the_approvals_list(page: Page, live_server):
    supervisor = UserFactory(username="sup-qian", role="supervisor")
    waiting = CaseFactory(
        stage=stage("third_party"),
        pending_stage=stage("litigation"),
        status=CaseStatus.AWAITING_APPROVAL,
        days_past_due=95,
        approval_requested_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )

    log_in(page, reverse("approvals"), supervisor.username)
    row = page.locator(f"#approval-{waiting.pk}")
    expect(row).to_contain_text("Litigation")
    row.get_by_role("button", name="Approve").click()

    expect(page.get_by_text(f"Case {waiting.pk} entered Litigation.")).to_be_visible()
    expect(page.locator(f"#approval-{waiting.pk}")).to_have_count(0)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.stage.code) == (CaseStatus.OPEN, "litigation")
    assert CaseEvent.objects.filter(case=waiting, kind=EventKind.APPROVED, actor=supervisor).exists()
    assert page.console_errors == []
