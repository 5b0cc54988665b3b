"""Security settings that hold in every environment: CSP without inline scripts, login
throttling (django-axes), password validators, idle session expiry, the admin's path, and
every setting documented in .env.example and README."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone, translation

from tests.factories import UserFactory
from tests.test_compose import ENV_EXAMPLE, env_example, settings_names

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PASSWORD = "pass-word-123"  # UserFactory's


# --- Content-Security-Policy ------------------------------------------------------------------


class InlineScriptFinder(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block: inline <script> bodies,
    on* event-handler attributes and javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            script_type = (names.get("type") or "text/javascript").lower()
            # JSON data blocks (type="application/json") are not run, so CSP allows them.
            self._in_inline_script = "src" not in names and "json" not in script_type
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name in {"href", "src", "action", "formaction"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}=javascript:...>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.problems.append(f"inline <script>: {data.strip()[:60]!r}")


def inline_scripts(html: str) -> list[str]:
    finder = InlineScriptFinder()
    finder.feed(html)
    return finder.problems


def test_the_inline_script_finder_finds_them():
    html = '<script>alert(1)</script><a href="javascript:x()">x</a><select onchange="f()"></select>'
    assert len(inline_scripts(html)) == 3
    assert (
        inline_scripts('<script src="/static/js/portal.js"></script><script type="application/json">{}</script>') == []
    )


def test_no_template_has_an_inline_script():
    templates = [p for d in (ROOT / "templates", *ROOT.glob("*/templates")) for p in d.rglob("*.html")]
    assert templates
    # Template tags first become a placeholder: the quotes inside them would confuse the HTML parser.
    found = {
        str(path.relative_to(ROOT)): problems
        for path in templates
        if (problems := inline_scripts(re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "T", path.read_text(), flags=re.S)))
    }
    assert not found, f"inline scripts, which the Content-Security-Policy blocks: {found}"


@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["login", "admin:login"])
def test_pages_carry_a_strict_csp_and_no_inline_script(client, url_name):
    response = client.get(reverse(url_name))
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'", policy
    assert "unsafe-inline" not in directives["script-src"]
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert inline_scripts(response.content.decode()) == []


@pytest.mark.django_db
def test_signed_in_home_page_has_no_inline_script(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(reverse("home"), follow=True)
    assert response.status_code == 200
    assert "Content-Security-Policy" in response
    assert inline_scripts(response.content.decode()) == []


# --- Login throttling -------------------------------------------------------------------------


def post_login(client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
def test_login_is_locked_after_the_failure_limit_even_with_the_right_password(client):
    user = UserFactory(username="collector-x")
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        response = post_login(client, user.username, "wrong")
        assert response.status_code == 200  # the form again, with Django's own error
    response = post_login(client, user.username, "wrong")
    assert response.status_code == 429
    response = post_login(client, user.username, PASSWORD)
    assert response.status_code == 429, "a locked account must not log in, even with the right password"
    assert "_auth_user_id" not in client.session
    assert "Too many failed login attempts" in response.content.decode()
    # The login form is shown again (with the message), not a bare text page.
    assert 'name="username"' in response.content.decode()


@pytest.mark.django_db
def test_the_lock_is_per_address_and_username(client):
    user = UserFactory(username="collector-y")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        post_login(client, user.username, "wrong", address="203.0.113.7")
    assert post_login(client, user.username, PASSWORD, address="203.0.113.7").status_code == 429
    # Someone else's failures elsewhere cannot lock the collector out of their own desk.
    response = post_login(client, user.username, PASSWORD, address="198.51.100.20")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_behind_a_proxy_the_clients_own_address_is_throttled(client, settings):
    """All requests come from the proxy's address; the header it sets tells clients apart."""
    settings.CLIENT_IP_HEADER = "X-Real-IP"
    user = UserFactory(username="collector-proxy")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            reverse("login"), {"username": user.username, "password": "wrong"}, REMOTE_ADDR="10.0.0.2",
            HTTP_X_REAL_IP="203.0.113.9",
        )  # fmt: skip
    locked = client.post(
        reverse("login"), {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2",
        HTTP_X_REAL_IP="203.0.113.9",
    )  # fmt: skip
    assert locked.status_code == 429
    other = client.post(
        reverse("login"), {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2",
        HTTP_X_REAL_IP="198.51.100.20",
    )  # fmt: skip
    assert other.status_code == 302


@pytest.mark.django_db
def test_a_successful_login_resets_the_failure_count(client):
    user = UserFactory(username="collector-z")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        post_login(client, user.username, "wrong")
    assert post_login(client, user.username, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        post_login(client, user.username, "wrong")
    assert post_login(client, user.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_lockout_message_is_translated(client):
    with translation.override("zh-hans"):
        message = str(settings.AXES_COOLOFF_MESSAGE)
    assert re.search(r"[\u4e00-\u9fff]", message), f"no Chinese translation: {message!r}"
    user = UserFactory(username="collector-zh")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = post_login(client, user.username, "wrong")
    assert response.status_code == 429
    assert message in response.content.decode()


# --- Passwords, sessions, admin ------------------------------------------------------------------


@pytest.mark.parametrize("password", ["12345678", "password", "short"])
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


def test_a_strong_password_passes():
    validate_password("correct-horse-battery-staple-42")


@pytest.mark.django_db
def test_the_session_expires_after_idle_time_and_each_request_extends_it(client):
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    client.force_login(UserFactory())
    first = client.session.get_expiry_date()
    response = client.get(reverse("home"))
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == settings.SESSION_COOKIE_AGE
    later = client.session.get_expiry_date()
    assert later >= first
    assert abs((later - timezone.now()).total_seconds() - settings.SESSION_COOKIE_AGE) < 60


def run_settings(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    prelude = "import django\ndjango.setup()\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_admin_path_is_configurable():
    result = run_settings(
        {"DJANGO_ADMIN_PATH": "/back-office/", "DJANGO_SESSION_COOKIE_AGE": "600"},
        "import json\nfrom django.urls import reverse\nfrom django.conf import settings\n"
        "print(json.dumps([reverse('admin:index'), settings.SESSION_COOKIE_AGE]))\n",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["/back-office/", 600]


def test_the_admin_is_at_admin_by_default():
    assert reverse("admin:index") == "/admin/"


# --- Every setting documented ----------------------------------------------------------------


def readme_setting_names() -> set[str]:
    """Names in backticks in the first column of README's settings tables."""
    text = README.read_text()
    section = text[text.index("## Settings") :]
    section = section[: section.index("\n## ", 3)]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_every_setting_is_in_the_readme_and_env_example():
    names = settings_names()
    _, listed = env_example()
    assert not names - listed, f"{ENV_EXAMPLE.name} lacks {sorted(names - listed)}"
    missing = names - readme_setting_names()
    assert not missing, f"README's settings tables lack {sorted(missing)}"


@pytest.mark.django_db
def test_the_api_docs_run_under_the_csp(client):
    """Swagger UI's own script comes from a URL (the split view), not inline."""
    client.force_login(UserFactory(is_staff=True))
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert inline_scripts(html) == []
    assert "<script src=" in html
