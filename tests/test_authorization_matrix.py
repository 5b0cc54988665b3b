"""The authorization matrix: every URL of the URLconf against every role (issue 8, part 2).

The URL patterns are read from ``get_resolver()`` (includes, namespaces, the API routers'
regex patterns and the admin at its configurable path), and each one must have a row in
``EXPECTED``: what each role gets for GET, and for POST where the view accepts POST. A new
URL without a row fails ``test_every_url_has_expectations`` with a message saying where to
add it; that is the point of this file.

Outcomes:
- ``ok``: 2xx, or a redirect somewhere other than a login page (for POST also 400 or 409:
  the role got past authorization and the body was judged on its merits);
- ``login``: a redirect to the login page (the portal's or the admin's) or 401;
- ``denied``: 403 or 404 (someone else's case answers 404 so its existence is not told);
- ``405``: the method is not accepted.

A refused POST must also leave the database unchanged: no row inserted, updated or deleted
in any table (PostgreSQL's per-transaction counters, ``pg_stat_xact_user_tables``) apart from
the session and the login-attempt log.

One world for the module (a case assigned to collector A and placed with agency X, a
legal matter with its letter, a hold, a case waiting for approval, a payment, a message);
every request runs in a savepoint rolled back afterwards, so each role sees the same world.

The admin's patterns are checked generically: its index and every registered model's
changelist, with what the staff admin may do read from CONTRACT section 9; its other
patterns (add, change, delete, history) use the same ModelAdmin permission checks.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.tokens import default_token_generator
from django.db import connection, transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.authtoken.models import Token

from cases.models import Case
from cases.services import payment_record
from cases.services.approvals import case_approve_escalation, case_request_escalation
from cases.services.work import hold_place
from legal.models import LegalDocument, LegalMatter, Placement
from notifications.models import MessageTemplate
from tests.factories import UserFactory
from tests.legal.conftest import SHANGHAI, make_agency, make_agency_user, third_party_case

# ``integration`` is the lender's system feeding loans and payments through the API.
ROLES = (
    "anonymous",
    "collector",
    "other_collector",
    "supervisor",
    "legal",
    "agency",
    "other_agency",
    "admin",
    "integration",
)
LOGGED_IN = ROLES[1:]
ADMIN_NS = "admin"
# Tables a refused request may still write: the session (saved on every request) and
# django-axes' log of login attempts.
WRITES_ALLOWED = re.compile(r"^(django_session|axes_.*)$")


# --- walking the URLconf --------------------------------------------------------------------


def url_patterns() -> list[tuple[str, str, URLPattern]]:
    """(key, route, pattern) of every URL pattern; the key is ``namespace:name``, or the
    route for an unnamed pattern."""
    found = []

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = namespace
                if p.namespace:
                    ns = f"{namespace}:{p.namespace}" if namespace else p.namespace
                walk(p.url_patterns, prefix + str(p.pattern), ns)
            else:
                route = prefix + str(p.pattern)
                key = (f"{namespace}:{p.name}" if namespace else p.name) if p.name else route
                found.append((key, route, p))

    walk(get_resolver().url_patterns, "", None)
    return found


def is_admin(key: str, route: str) -> bool:
    return key.startswith(ADMIN_NS + ":") or route.startswith(settings.ADMIN_URL)


PATTERNS = url_patterns()
SITE_PATTERNS = [(key, route) for key, route, _p in PATTERNS if not is_admin(key, route)]


# --- expectations -----------------------------------------------------------------------------


def row(ok: str = "", *, anonymous: str = "login", others: str = "denied", **special: str) -> dict[str, str]:
    """Outcome per role: the roles named in ``ok`` (space separated, or "all") get ``ok``,
    anonymous users ``anonymous``, every other role ``others``; keywords override a role."""
    allowed = set(LOGGED_IN) if ok == "all" else set(ok.split())
    outcome = {role: ("ok" if role in allowed else others) for role in LOGGED_IN}
    outcome["anonymous"] = anonymous
    outcome.update(special)
    return outcome


EVERYONE = row("all", anonymous="ok")
LOGGED_IN_ONLY = row("all")
ALL_405 = row(others="405", anonymous="405")
# A method the view does not take, behind login_required: anonymous users are sent to log
# in first, everyone else gets 405 (named for the POST-only views' GET).
POST_ONLY = row(others="405")
# Who works a case (CONTRACT section 9): its collector, supervisors, and the agency it is
# placed with; legal staff see every case too. Someone else's case answers 404.
CASE_READERS = "collector supervisor legal agency"
CASE_WORKERS = "collector supervisor agency"  # contacts, promises, plans, messages
# The API (token auth): anonymous requests get 401, ``login`` here. DRF checks the role
# before the method, so a GET on a POST-only endpoint is 403 for a role without it.
API_CASE_READERS = "collector supervisor legal agency integration"

EXPECTED: dict[str, dict[str, dict[str, str]]] = {
    # Probes and monitoring: /healthz for load balancers, /metrics for staff or a token.
    "healthz": {"GET": EVERYONE, "POST": ALL_405},
    "metrics": {"GET": row("admin", anonymous="denied"), "POST": ALL_405},
    # Accounts: Django's auth views and the language switch.
    "login": {"GET": EVERYONE, "POST": EVERYONE},
    "logout": {"GET": ALL_405, "POST": row(others="login")},
    "language-set": {"GET": ALL_405, "POST": EVERYONE},
    "set_language": {"GET": EVERYONE, "POST": EVERYONE},
    "password_change": {"GET": LOGGED_IN_ONLY, "POST": LOGGED_IN_ONLY},
    "password_change_done": {"GET": LOGGED_IN_ONLY, "POST": POST_ONLY},
    "password_reset": {"GET": EVERYONE, "POST": EVERYONE},
    "password_reset_done": {"GET": EVERYONE, "POST": ALL_405},
    "password_reset_confirm": {"GET": EVERYONE, "POST": EVERYONE},
    "password_reset_complete": {"GET": EVERYONE, "POST": ALL_405},
    # Twilio's webhooks: public, but a request without a valid signature is refused.
    "twilio-status": {"GET": ALL_405, "POST": row(anonymous="denied")},
    "twilio-inbound": {"GET": ALL_405, "POST": row(anonymous="denied")},
    # The collector's workspace.
    "home": {"GET": LOGGED_IN_ONLY, "POST": POST_ONLY},
    "queue": {"GET": LOGGED_IN_ONLY, "POST": POST_ONLY},
    # The integration role reads every case (through the API, and so on the case page too).
    "case-detail": {"GET": row(CASE_READERS + " integration"), "POST": POST_ONLY},
    "case-contact": {"GET": POST_ONLY, "POST": row(CASE_WORKERS)},
    "case-promise": {"GET": POST_ONLY, "POST": row(CASE_WORKERS)},
    "case-plan": {"GET": POST_ONLY, "POST": row("collector supervisor")},
    # Legal staff add notes; collectors and agencies record the holds borrowers raise
    # (dispute, cease communication); only supervisors release holds.
    "case-note": {"GET": POST_ONLY, "POST": row(CASE_READERS)},
    "case-hold": {"GET": POST_ONLY, "POST": row(CASE_READERS)},
    "case-hold-release": {"GET": POST_ONLY, "POST": row("supervisor")},
    # Revealing a masked phone or id (with a reason, audited): not for agencies.
    "case-reveal": {"GET": POST_ONLY, "POST": row("collector supervisor legal")},
    "case-send-template": {"GET": row(CASE_WORKERS), "POST": row(CASE_WORKERS)},
    # Supervisor pages.
    "dashboard": {"GET": row("supervisor"), "POST": row(supervisor="405")},
    "dashboard_csv": {"GET": row("supervisor"), "POST": row(supervisor="405")},
    "team_cases": {"GET": row("supervisor"), "POST": row("supervisor")},
    "approvals": {"GET": row("supervisor"), "POST": row(supervisor="405")},
    "approval_decide": {"GET": row(supervisor="405"), "POST": row("supervisor")},
    # Legal pages: legal staff and supervisors; staff admins read them (they manage agencies).
    "legal:matters": {"GET": row("legal supervisor admin"), "POST": ALL_405},
    "legal:matter": {"GET": row("legal supervisor admin"), "POST": ALL_405},
    "legal:matter_step": {"GET": ALL_405, "POST": row("legal supervisor")},
    "legal:hearings": {"GET": row("legal supervisor admin"), "POST": ALL_405},
    "legal:agencies": {"GET": row("legal supervisor admin"), "POST": ALL_405},
    "legal:placements": {"GET": row("legal supervisor admin"), "POST": ALL_405},
    "legal:placement_recall": {"GET": ALL_405, "POST": row("legal supervisor")},
    "legal:case_place": {"GET": ALL_405, "POST": row("legal supervisor")},
    "legal:document_download": {"GET": row("legal supervisor"), "POST": ALL_405},
    # REST API (CONTRACT section 7); the schema and its docs are public (no data in them).
    "v1:loan-list": {"GET": row(integration="405"), "POST": row("integration")},
    "v1:payment-list": {"GET": row(integration="405"), "POST": row("integration")},
    "v1:loan-detail": {"GET": row(API_CASE_READERS), "POST": POST_ONLY},
    # Every role may list cases: the list holds only the cases the role may see.
    "v1:case-list": {"GET": LOGGED_IN_ONLY, "POST": POST_ONLY},
    "v1:case-detail": {"GET": row(API_CASE_READERS), "POST": POST_ONLY},
    "v1:case-events": {"GET": row(API_CASE_READERS), "POST": POST_ONLY},
    "v1:case-approve-escalation": {"GET": POST_ONLY, "POST": row("supervisor")},
    "v1:case-contacts": {"GET": POST_ONLY, "POST": row(CASE_WORKERS)},
    "v1:case-promises": {"GET": POST_ONLY, "POST": row(CASE_WORKERS)},
    "v1:case-holds": {"GET": POST_ONLY, "POST": row(CASE_READERS)},
    "v1:case-release-hold": {"GET": POST_ONLY, "POST": row("supervisor")},
    "v1:notification-list": {"GET": row("supervisor admin"), "POST": row(supervisor="405", admin="405")},
    "api-schema": {"GET": EVERYONE, "POST": ALL_405},
    "api-docs": {"GET": EVERYONE, "POST": ALL_405},
}


# --- the world ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once, rolled back when the module ends."""
    with (
        django_db_blocker.unblock(),
        override_settings(LEGAL_FILES_ROOT=tmp_path_factory.mktemp("legal-files")),
        transaction.atomic(),
    ):
        users = {
            "collector": UserFactory(username="mx-collector-a", role="collector"),
            "other_collector": UserFactory(username="mx-collector-b", role="collector"),
            "supervisor": UserFactory(username="mx-supervisor", role="supervisor"),
            "legal": UserFactory(username="mx-legal", role="legal"),
            "admin": UserFactory(username="mx-admin", role="admin", is_staff=True),
            "integration": UserFactory(username="mx-integration", role="integration"),
        }
        requester = UserFactory(username="mx-requester", role="supervisor")
        agency_x = make_agency("Agency X")
        # Placed with X: the sweep places a third-party case with the least-loaded active
        # agency, and Y does not exist yet.
        case = third_party_case()
        agency_y = make_agency("Agency Y")
        users["agency"] = make_agency_user("mx-agency-x", agency_x)
        users["other_agency"] = make_agency_user("mx-agency-y", agency_y)
        placement = Placement.objects.get(case=case, recalled_at__isnull=True)
        assert placement.agency_id == agency_x.pk

        litigated = third_party_case()
        case_request_escalation(case_id=litigated.pk, stage_code="litigation", requested_by=requester)
        case_approve_escalation(
            case_id=litigated.pk, approver=users["supervisor"], now=dt.datetime(2026, 4, 10, 10, tzinfo=SHANGHAI)
        )
        matter = LegalMatter.objects.get(case=litigated)
        document = LegalDocument.objects.get(matter=matter)
        waiting = third_party_case()
        case_request_escalation(case_id=waiting.pk, stage_code="litigation", requested_by=requester)
        held = third_party_case()
        hold = hold_place(case=held, by=users["supervisor"], reason="dispute", note="Disputes the amount")
        Case.objects.filter(pk__in=[case.pk, litigated.pk, waiting.pk, held.pk]).update(assigned_to=users["collector"])
        payment_record(
            external_id="MX-PAY-1",
            loan=case.loan.external_id,
            amount=Decimal("10.00"),
            paid_at=dt.datetime(2026, 2, 11, 10, tzinfo=SHANGHAI),
        )
        template = MessageTemplate.objects.filter(
            approved=True, active=True, language=case.loan.borrower.language
        ).first()
        clients = {"anonymous": Client()}
        api_clients = {"anonymous": Client()}
        for role, user in users.items():
            clients[role] = Client()
            clients[role].force_login(user)
            token = Token.objects.create(user=user)
            api_clients[role] = Client(headers={"Authorization": f"Token {token.key}"})
        ids = {
            "case_id": case.pk,
            "pk": case.pk,
            "hold_id": hold.pk,
            "matter_id": matter.pk,
            "placement_id": placement.pk,
            "document_id": document.pk,
            "external_id": case.loan.external_id,
            "step": "letter-sent",
            "key": "funnel",
            "uidb64": urlsafe_base64_encode(force_bytes(users["collector"].pk)),
            "token": default_token_generator.make_token(users["collector"]),
        }
        # Per URL, kwargs that differ from the defaults above.
        special = {
            "approval_decide": {"case_id": waiting.pk},
            "case-hold-release": {"case_id": held.pk},
            "v1:case-release-hold": {"pk": held.pk},
            "v1:case-approve-escalation": {"pk": waiting.pk},
        }
        yield {
            "users": users,
            "clients": clients,
            "api_clients": api_clients,
            "ids": ids,
            "special": special,
            "case": case,
            "template": template,
            "agency_x": agency_x,
        }
        transaction.set_rollback(True)


def url_for(world, key: str, route: str) -> str:
    kwargs = {**world["ids"], **world["special"].get(key, {})}
    names = re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", route)
    wanted = {a or b for a, b in names}
    url = reverse(key, kwargs={k: kwargs[k] for k in wanted})
    if key == "case-send-template" and world["template"]:
        url += f"?template={world['template'].pk}"  # the preview needs a template
    return url


def post_data(world, key: str) -> dict:
    """A valid body per POST URL, so that roles allowed get past the form too."""
    today = dt.date(2026, 12, 1)
    return {
        "case-contact": {"contact-channel": "phone", "contact-outcome": "no_answer"},
        "case-promise": {"promise-amount": "100.00", "promise-due_date": (today + dt.timedelta(days=7)).isoformat()},
        "case-plan": {"plan-note": "matrix"},
        "case-note": {"note-text": "Called the employer."},
        "case-hold": {"hold-reason": "dispute", "hold-note": "Says it is paid"},
        "case-hold-release": {"release-note": "Resolved"},
        "case-reveal": {"reveal-field": "phone", "reveal-reason": "Calling the borrower"},
        "case-send-template": {"template": world["template"].pk if world["template"] else ""},
        "approval_decide": {"decision": "approve"},
        "legal:case_place": {"agency": world["agency_x"].pk},
        "language-set": {"language": "en"},
        "set_language": {"language": "en"},
        "password_reset": {"email": "nobody@example.com"},
    }.get(key, {})


API_BODIES = {
    "v1:case-contacts": {"channel": "phone", "outcome": "no_answer", "note": ""},
    "v1:case-promises": {"amount": "100.00", "due_date": "2026-12-10"},
    "v1:case-holds": {"reason": "dispute", "note": "Says it is paid"},
    "v1:case-release-hold": {"note": "Resolved"},
    "v1:case-approve-escalation": {},
    "v1:payment-list": {"external_id": "MX-PAY-2", "loan": "?", "amount": "1.00", "paid_at": "2026-02-12T10:00:00Z"},
}


def writes() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables")
        return {name: n for name, n in cursor.fetchall() if n and not WRITES_ALLOWED.match(name)}


def classify(response, method: str) -> str:
    status = response.status_code
    if status == 401:
        return "login"
    if 300 <= status < 400:
        path = urlsplit(response["Location"]).path
        return "login" if path in (reverse("login"), reverse("admin:login")) else "ok"
    if 200 <= status < 300 or (method == "POST" and status in (400, 409)):
        return "ok"
    if status in (403, 404):
        return "denied"
    if status == 405:
        return "405"
    return f"HTTP {status}"


def request(world, role: str, method: str, key: str, url: str) -> tuple[str, int, dict[str, int]]:
    """One request in a savepoint rolled back after it: (outcome, status, tables written)."""
    api = url.startswith("/api/")
    client = (world["api_clients"] if api else world["clients"])[role]
    # The cookies too are put back: a logout or a language switch must not carry over.
    cookies = copy.deepcopy(client.cookies)
    with transaction.atomic():
        before = writes()
        if method == "GET":
            response = client.get(url)
        elif api:
            body = dict(API_BODIES.get(key, {}))
            if body.get("loan") == "?":
                body["loan"] = world["ids"]["external_id"]
            response = client.post(url, body, content_type="application/json")
        else:
            response = client.post(url, post_data(world, key))
        after = writes()
        transaction.set_rollback(True)
    client.cookies = cookies
    changed = {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)}
    return classify(response, method), response.status_code, changed


# --- the admin, generically ------------------------------------------------------------------

# Admin patterns this file knows: the site's own views and, per registered model, the
# changelist, add, change, delete and history views (plus the user's password form). A
# custom admin view is something new: add it here with its expectations.
ADMIN_SITE_VIEWS = {"index", "login", "logout", "password_change", "password_change_done", "autocomplete", "jsi18n"}
ADMIN_SITE_VIEWS |= {"view_on_site", "app_list", "auth_user_password_change"}
ADMIN_MODEL_VIEWS = re.compile(r"^admin:\w+_(changelist|add|change|delete|history)$")
# Unnamed: each model's old-style ".../<id>/" redirect to its change page, and the catch-all.
ADMIN_UNNAMED = re.compile(r"<path:object_id>/$|\(\?P<url>\.\*\)\$$")
# What the staff admin manages (CONTRACT section 9): stage rules, templates, the compliance
# policy, schedules, agencies and users.
ADMIN_MANAGES = {
    "cases.stage",
    "notifications.messagetemplate",
    "notifications.compliancepolicy",
    "django_celery_beat.periodictask",
    "django_celery_beat.crontabschedule",
    "django_celery_beat.intervalschedule",
    "django_celery_beat.clockedschedule",
    "django_celery_beat.solarschedule",
    "legal.agency",
    "accounts.user",
}


def unknown_admin_patterns() -> list[str]:
    unknown = []
    for key, route, _p in PATTERNS:
        if not is_admin(key, route):
            continue
        if key.startswith(ADMIN_NS + ":"):
            name = key.split(":", 1)[1]
            if name in ADMIN_SITE_VIEWS or ADMIN_MODEL_VIEWS.match(key):
                continue
        elif ADMIN_UNNAMED.search(route):
            continue
        unknown.append(key)
    return unknown


ADMIN_PAGES = [("admin:index", {}), ("admin:app_list", {"app_label": "cases"})] + [
    (f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist", {})
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label_lower)
]


# --- the tests ------------------------------------------------------------------------------


def test_every_url_has_expectations():
    missing = [key for key, _route in SITE_PATTERNS if key not in EXPECTED]
    assert not missing, (
        "These URL patterns have no row in EXPECTED of tests/test_authorization_matrix.py: "
        f"{', '.join(missing)}. Add one per URL saying what each role gets for GET and POST "
        "(ok, login, denied or 405), following CONTRACT section 9."
    )
    unknown = unknown_admin_patterns()
    assert not unknown, (
        f"Admin URL patterns of an unknown kind: {', '.join(unknown)}. Add them to ADMIN_SITE_VIEWS (and a "
        "check of who may open them) in tests/test_authorization_matrix.py."
    )
    stale = sorted(set(EXPECTED) - {key for key, _route in SITE_PATTERNS})
    assert not stale, f"EXPECTED has rows for URLs that no longer exist: {', '.join(stale)}; remove them."


def check(world, key: str, route: str, method: str) -> None:
    if key not in EXPECTED:
        pytest.fail(f"{key} ({route}) has no row in EXPECTED: add what each role gets (see the module docstring).")
    url = url_for(world, key, route)
    wrong, wrote = [], []
    for role in ROLES:
        outcome, status, changed = request(world, role, method, key, url)
        expected = EXPECTED[key][method][role]
        if outcome != expected:
            wrong.append(f"{role}: expected {expected}, got {outcome} (HTTP {status})")
        if outcome != "ok" and changed:
            wrote.append(f"{role} was refused ({status}) but the request wrote {changed}")
    assert not wrong, f"{method} {url}:\n  " + "\n  ".join(wrong)
    assert not wrote, f"{method} {url}:\n  " + "\n  ".join(wrote)


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "route"), SITE_PATTERNS, ids=[key for key, _r in SITE_PATTERNS])
def test_get(world, key, route):
    check(world, key, route, "GET")


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "route"), SITE_PATTERNS, ids=[key for key, _r in SITE_PATTERNS])
def test_post(world, key, route):
    """Every URL gets a POST too: views that take none must refuse it and write nothing."""
    check(world, key, route, "POST")


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "kwargs"), ADMIN_PAGES, ids=[name for name, _k in ADMIN_PAGES])
def test_admin(world, name, kwargs):
    """Only staff reach the admin (others are sent to its login page); the staff admin sees
    what its permissions allow, and at least what CONTRACT section 9 gives it to manage."""
    url = reverse(name, kwargs=kwargs)
    admin_user = world["users"]["admin"]
    if name.endswith("_changelist"):
        label = name.removeprefix("admin:").removesuffix("_changelist")
        model = next(m for m in admin.site._registry if f"{m._meta.app_label}_{m._meta.model_name}" == label)
        model_admin = admin.site._registry[model]
        rf_request = type("R", (), {"user": admin_user})()
        may_view = model_admin.has_view_or_change_permission(rf_request)
        if model._meta.label_lower in ADMIN_MANAGES:
            assert may_view, f"the staff admin must manage {model._meta.label_lower} (CONTRACT section 9)"
        admin_expected = "ok" if may_view else "denied"
    else:
        admin_expected = "ok"
    wrong = []
    for role in ROLES:
        outcome, status, changed = request(world, role, "GET", name, url)
        expected = admin_expected if role == "admin" else "login"
        if outcome != expected:
            wrong.append(f"{role}: expected {expected}, got {outcome} (HTTP {status})")
        if changed:
            wrong.append(f"{role}: a GET of the admin wrote {changed}")
    assert not wrong, f"GET {url}:\n  " + "\n  ".join(wrong)


@pytest.mark.django_db
def test_the_write_check_sees_writes(world):
    """The "refused requests write nothing" check is not vacuous: an allowed contact POST
    shows up in the counters, and the savepoint leaves the world as it was."""
    key, route = next((k, r) for k, r in SITE_PATTERNS if k == "case-contact")
    url = url_for(world, key, route)
    outcome, status, changed = request(world, "collector", "POST", key, url)
    assert (outcome, status) == ("ok", 302)
    assert changed.get("cases_contactattempt") == 1
    assert not world["case"].contact_attempts.exists()
