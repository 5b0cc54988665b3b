"""The site layout and account pages: navigation by role, the language switch saved on the
user, the user's time zone, password reset by email, and no inline scripts anywhere."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import User
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def collector():
    return UserFactory(username="collector-a", role="collector")


@pytest.fixture
def supervisor():
    return UserFactory(username="boss", role="supervisor")


def nav(response) -> str:
    html = response.content.decode()
    return html[html.index('<nav class="mainnav"') : html.index("</nav>")]


# --- navigation ----------------------------------------------------------------------------


def test_a_collector_sees_their_queue_and_no_supervisor_pages(client, collector):
    client.force_login(collector)

    links = nav(client.get(reverse("queue")))

    assert reverse("queue") in links
    assert 'aria-current="page"' in links
    assert reverse("dashboard") not in links
    assert reverse("approvals") not in links


def test_a_supervisor_sees_the_dashboard_team_cases_and_approvals(client, supervisor):
    client.force_login(supervisor)

    links = nav(client.get(reverse("home")))

    for name in ("dashboard", "team_cases", "approvals"):
        assert reverse(name) in links, name


def test_an_anonymous_visitor_gets_no_navigation_but_a_language_switch(client):
    html = client.get(reverse("login")).content.decode()

    assert 'class="mainnav"' not in html
    assert f'action="{reverse("language-set")}"' in html
    assert reverse("password_reset") in html


# --- language ------------------------------------------------------------------------------


def test_the_language_switch_saves_the_users_choice(client, collector):
    client.force_login(collector)

    response = client.post(reverse("language-set"), {"language": "zh-hans", "next": reverse("queue")})

    assert response.status_code == 302
    assert response["Location"] == reverse("queue")
    assert User.objects.get(pk=collector.pk).language == "zh-hans"
    assert "我的队列" in client.get(reverse("queue")).content.decode()


def test_the_saved_language_wins_over_the_browser_and_the_cookie(client, collector):
    collector.language = "zh-hans"
    collector.save(update_fields=["language"])
    client.force_login(collector)
    client.cookies["django_language"] = "en"

    html = client.get(reverse("queue"), headers={"accept-language": "en"}).content.decode()

    assert '<html lang="zh-hans">' in html
    assert "退出登录" in html


def test_an_unknown_language_is_not_saved(client, collector):
    client.force_login(collector)

    client.post(reverse("language-set"), {"language": "klingon", "next": "/"})

    assert User.objects.get(pk=collector.pk).language == "en"


def test_an_anonymous_visitor_switches_by_cookie(client):
    response = client.post(reverse("language-set"), {"language": "zh-hans", "next": reverse("login")})

    assert response.cookies["django_language"].value == "zh-hans"
    assert "登录" in client.get(reverse("login")).content.decode()


def test_the_language_switch_refuses_get(client):
    assert client.get(reverse("language-set")).status_code == 405


# --- time zone -----------------------------------------------------------------------------


def test_an_unknown_time_zone_falls_back_to_the_business_zone(client, collector):
    case = CaseFactory(assigned_to=collector)
    collector.time_zone = "Mars/Olympus_Mons"
    collector.save(update_fields=["time_zone"])
    client.force_login(collector)

    response = client.get(reverse("case-detail", kwargs={"case_id": case.pk}))

    assert response.status_code == 200


# --- password reset ------------------------------------------------------------------------


def test_password_reset_by_email_end_to_end(client, collector):
    response = client.post(reverse("password_reset"), {"email": collector.email})

    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [collector.email]
    assert "Reset your password" in message.subject
    assert message.alternatives and message.alternatives[0][1] == "text/html"
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", message.body).group(1)

    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    assert "Choose a new password" in form_page.content.decode()
    done = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
        {"new_password1": "another-Secret-987", "new_password2": "another-Secret-987"},
    )
    assert done.status_code == 302
    assert done["Location"] == reverse("password_reset_complete")
    assert User.objects.get(pk=collector.pk).check_password("another-Secret-987")


def test_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert mail.outbox == []


def test_a_bad_reset_link_says_so(client, collector):
    response = client.get(reverse("password_reset_confirm", kwargs={"uidb64": "MQ", "token": "bad-token"}))

    assert "This link no longer works" in response.content.decode()


def test_the_password_change_page_needs_a_login(client):
    assert client.get(reverse("password_change")).status_code == 302


# --- no inline scripts (a strict Content-Security-Policy) -----------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)


def test_no_page_has_an_inline_script_or_event_handler(client, collector, supervisor):
    case = CaseFactory(assigned_to=collector)
    pages = [reverse("login"), reverse("password_reset")]
    for page in pages:
        html = client.get(page).content.decode()
        assert not INLINE_SCRIPT.search(html), page
        assert not EVENT_HANDLER.search(html), page
    for user in (collector, supervisor):
        client.force_login(user)
        for page in (reverse("home"), reverse("queue"), reverse("case-detail", kwargs={"case_id": case.pk})):
            html = client.get(page).content.decode()
            assert "<script" in html  # htmx and portal.js, from files
            assert not INLINE_SCRIPT.search(html), page
            assert not EVENT_HANDLER.search(html), page
