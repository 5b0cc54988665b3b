"""Logging in through the real form in Chromium, and the stage rules in Django admin."""

import re

from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.factories import UserFactory

PASSWORD = "pass-word-123"
DEFAULT_STAGE_CODES = ["warning", "reminder", "phone", "third_party", "litigation"]


def log_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_it_logs_a_collector_in_from_the_home_page(page: Page, live_server):
    collector = UserFactory(username="collector-li", role="collector")

    page.goto("/")
    # The home page sends an anonymous visitor to the login page, remembering where to go back.
    expect(page).to_have_url(f"{live_server.url}{reverse('login')}?next=/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    log_in(page, collector.username, PASSWORD)

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("header")).to_contain_text(collector.username)
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert page.console_errors == []


def test_it_refuses_a_wrong_password(page: Page, live_server):
    collector = UserFactory(username="collector-wang", role="collector")

    page.goto(reverse("login"))
    log_in(page, collector.username, "not-the-password")

    expect(page.locator(".errorlist")).to_contain_text("Please enter a correct username and password")
    expect(page).to_have_url(f"{live_server.url}{reverse('login')}")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    expect(page.locator("header")).not_to_contain_text(collector.username)
    assert page.console_errors == []


def test_it_shows_the_default_stage_rules_to_a_superuser_in_admin(page: Page, live_server):
    admin = UserFactory(username="admin-zhao", is_staff=True, is_superuser=True)
    stage_rules = reverse("admin:cases_stage_changelist")

    page.goto(stage_rules)
    expect(page).to_have_url(re.compile(re.escape(reverse("admin:login"))))
    log_in(page, admin.username, PASSWORD)

    expect(page).to_have_url(f"{live_server.url}{stage_rules}")
    expect(page.get_by_role("heading", name="Select stage rule to change")).to_be_visible()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(len(DEFAULT_STAGE_CODES))
    for code in DEFAULT_STAGE_CODES:
        expect(rows.get_by_role("link", name=code, exact=True)).to_be_visible()
    assert page.console_errors == []
