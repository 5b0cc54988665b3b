"""The collector's day in real Chromium: queue, case page, a call with a promise, languages.

The pages run under the portal's Content-Security-Policy (scripts from our origin only),
so ``page.console_errors == []`` also proves that no inline script or handler was blocked.
"""

import datetime as dt
import re
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import User
from cases.models import ContactAttempt, Installment, PromiseToPay
from tests.browser.test_login import PASSWORD, log_in
from tests.factories import CaseFactory, UserFactory, stage


def a_case(collector, **kwargs):
    case = CaseFactory(
        assigned_to=collector,
        stage=stage("phone"),
        days_past_due=12,
        outstanding=Decimal("2000.00"),
        overdue_amount=Decimal("1000.00"),
        loan__borrower__name=kwargs.pop("name", "Li Na"),
        **kwargs,
    )
    Installment.objects.create(loan=case.loan, sequence=1, due_date=dt.date(2026, 1, 5), amount=Decimal("2000.00"))
    return case


def test_a_collector_logs_a_call_with_a_promise_and_sees_it_on_the_timeline(page: Page, live_server):
    collector = UserFactory(username="collector-li", role="collector")
    case = a_case(collector)
    promised_by = (timezone.localdate() + dt.timedelta(days=3)).isoformat()

    page.goto(reverse("queue"))
    log_in(page, collector.username, PASSWORD)
    expect(page.get_by_role("heading", name="My queue")).to_be_visible()
    expect(page.get_by_role("link", name="My queue")).to_have_attribute("aria-current", "page")

    page.get_by_role("link", name=f"#{case.pk}").click()
    expect(page).to_have_url(f"{live_server.url}{reverse('case-detail', kwargs={'case_id': case.pk})}")
    expect(page.get_by_role("heading", name=re.compile(f"Case #{case.pk}"))).to_be_visible()
    expect(page.locator("ol.stage-path li.current")).to_contain_text("Phone collection")
    expect(page.locator("#borrower-phone")).to_contain_text("****")

    # A marker on the window survives an htmx swap but not a page load.
    page.evaluate("window.stillTheSamePage = true")
    contact = page.locator("details", has_text="Log a contact")
    contact.get_by_label("Channel").select_option("phone")
    contact.get_by_label("Outcome").select_option("promise_to_pay")
    contact.get_by_label("Note").fill("Will pay after payday")
    contact.get_by_label("Promised amount").fill("500.00")
    contact.get_by_label("Promised by").fill(promised_by)
    contact.get_by_role("button", name="Log contact").click()

    # htmx swapped the case body in place: the confirmation and the timeline entries show.
    expect(page.get_by_role("status")).to_contain_text("Contact logged and promise to pay recorded.")
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text("Phone call · Promise to pay")
    expect(timeline).to_contain_text(f"500.00 by {promised_by}")
    expect(page.locator("#arrangements-heading + p")).to_contain_text("500.00")
    # Still the same page (no full navigation), and everything was written.
    assert page.evaluate("window.stillTheSamePage") is True
    assert ContactAttempt.objects.filter(case=case, outcome="promise_to_pay").count() == 1
    assert PromiseToPay.objects.get(case=case).amount == Decimal("500.00")
    assert page.console_errors == []


def test_a_form_error_shows_on_its_field_without_leaving_the_page(page: Page, live_server):
    collector = UserFactory(username="collector-wu", role="collector")
    case = a_case(collector)

    page.goto(reverse("case-detail", kwargs={"case_id": case.pk}))
    log_in(page, collector.username, PASSWORD)
    note = page.locator("details", has_text="Add a note")
    note.locator("summary").click()
    note.get_by_role("button", name="Add note").click()

    field = page.locator("details", has_text="Add a note").get_by_label("Note")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("details", has_text="Add a note").locator(".errorlist")).to_contain_text("required")
    assert page.console_errors == []


def test_a_collector_gets_404_for_another_collectors_case(page: Page, live_server):
    collector = UserFactory(username="collector-zhou", role="collector")
    other = UserFactory(username="collector-qian", role="collector")
    theirs = a_case(other, name="Someone Else")

    page.goto(reverse("login"))
    log_in(page, collector.username, PASSWORD)
    response = page.goto(reverse("case-detail", kwargs={"case_id": theirs.pk}))

    assert response is not None and response.status == 404
    expect(page.locator("body")).not_to_contain_text("Someone Else")


def test_the_zh_hans_interface_shows_chinese_labels_and_the_choice_is_saved(page: Page, live_server):
    collector = UserFactory(username="collector-chen", role="collector")
    case = a_case(collector)

    page.goto(reverse("login"))
    log_in(page, collector.username, PASSWORD)
    # The language switch submits on change (static/js/portal.js, no inline handler).
    page.get_by_label("Language").select_option("zh-hans")

    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("link", name="我的队列")).to_be_visible()
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    assert User.objects.get(pk=collector.pk).language == "zh-hans"

    page.goto(reverse("case-detail", kwargs={"case_id": case.pk}))
    expect(page.locator("ol.stage-path li.current")).to_contain_text("电话催收")
    expect(page.get_by_role("heading", name="时间线")).to_be_visible()
    expect(page.locator("details", has_text="记录联系").first).to_be_visible()
    expect(page.get_by_role("heading", name="逾期天数")).to_have_count(0)  # a label, not a heading
    expect(page.locator(".figure .label").first).to_have_text("逾期天数")

    # Remembered per user: a new browser session shows Chinese straight after logging in.
    page.context.clear_cookies()
    page.goto(reverse("login"))
    log_in(page, collector.username, PASSWORD)
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    assert page.console_errors == []
