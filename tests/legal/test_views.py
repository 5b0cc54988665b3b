"""The legal pages and the letter download: who may see them (anonymous -> login, other
roles 403, unknown -> 404), pinned query counts, transitions and recalls through the pages,
and agency users' isolation on the case views that collectors use."""

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cases.selectors import business_date, case_visible_to, cases_for_user
from cases.services.approvals import case_approve_escalation, case_request_escalation
from legal.models import Hearing, LegalDocument, LegalMatter, MatterStatus, Placement
from legal.services.matters import matter_file, matter_mark_letter_sent
from legal.services.placements import placement_recall
from tests.factories import UserFactory

from .conftest import SHANGHAI, make_agency, make_agency_user, third_party_case

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 4, 10, 10, 0, tzinfo=SHANGHAI)

PAGES = ["legal:matters", "legal:hearings", "legal:agencies", "legal:placements"]


@pytest.fixture
def matter(supervisor):
    make_agency("A")
    case = third_party_case()
    case_request_escalation(case_id=case.pk, stage_code="litigation", requested_by=UserFactory(username="req"))
    case_approve_escalation(case_id=case.pk, approver=supervisor, now=NOW)
    return LegalMatter.objects.get(case=case)


@pytest.fixture
def letter(matter):
    return LegalDocument.objects.get(matter=matter)


def all_urls(matter, letter):
    return [reverse(name) for name in PAGES] + [
        reverse("legal:matter", args=[matter.pk]),
        reverse("legal:document_download", args=[letter.pk]),
    ]


def test_anonymous_users_are_sent_to_log_in(client, matter, letter):
    for url in all_urls(matter, letter):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login")), url


@pytest.mark.parametrize("role", ["collector", "agency", None])
def test_other_roles_get_403_on_every_page_and_the_download(client, matter, letter, role):
    client.force_login(UserFactory(username="someone", role=role))
    for url in all_urls(matter, letter):
        assert client.get(url).status_code == 403, url
    step = reverse("legal:matter_step", args=[matter.pk, "letter-sent"])
    assert client.post(step).status_code == 403
    matter.refresh_from_db()
    assert matter.status == MatterStatus.APPROVED


@pytest.mark.parametrize("role", ["legal", "supervisor"])
def test_legal_staff_and_supervisors_see_every_page(client, matter, letter, role):
    client.force_login(UserFactory(username="staff", role=role))
    for url in all_urls(matter, letter)[:-1]:
        response = client.get(url)
        assert response.status_code == 200, url
    page = client.get(reverse("legal:matter", args=[matter.pk])).content.decode()
    assert matter.case.loan.borrower.name in page
    assert letter.sha256 in page
    assert reverse("legal:document_download", args=[letter.pk]) in page
    assert "<script>" not in page  # no inline scripts: the CSP forbids them


@pytest.mark.parametrize("role", ["legal", "supervisor"])
def test_the_letter_downloads_for_legal_staff_and_supervisors_only_through_the_view(client, letter, role):
    client.force_login(UserFactory(username="staff", role=role))
    response = client.get(reverse("legal:document_download", args=[letter.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body.startswith(b"%PDF")
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Cache-Control"] == "private, no-store"
    assert hashlib.sha256(body).hexdigest() == letter.sha256
    with pytest.raises(ValueError, match="no public URL"):
        letter.file.url  # noqa: B018


def test_unknown_matter_and_document_are_404(client, legal_user):
    client.force_login(legal_user)
    assert client.get(reverse("legal:matter", args=[999999])).status_code == 404
    assert client.get(reverse("legal:document_download", args=[999999])).status_code == 404
    assert client.post(reverse("legal:matter_step", args=[999999, "close"])).status_code == 404


def test_the_letter_is_not_under_media(letter, settings):
    assert not Path(letter.file.path).is_relative_to(Path(settings.MEDIA_ROOT))


def test_a_step_through_the_page_and_an_invalid_one_refused_with_the_reason(client, matter, legal_user):
    client.force_login(legal_user)
    url = reverse("legal:matter_step", args=[matter.pk, "file"])
    response = client.post(url, {"file-court": "法院", "file-court_case_number": "N1", "file-filed_on": "2026-04-01"})
    assert response.status_code == 302
    page = client.get(response.url).content.decode()
    assert "cannot move to" in page
    matter.refresh_from_db()
    assert matter.status == MatterStatus.APPROVED

    client.post(reverse("legal:matter_step", args=[matter.pk, "letter-sent"]))
    response = client.post(url, {"file-court": "", "file-court_case_number": "N1", "file-filed_on": "2026-04-01"})
    page = client.get(response.url).content.decode()
    assert "Court:" in page
    client.post(url, {"file-court": "法院", "file-court_case_number": "N1", "file-filed_on": "2026-04-01"})
    matter.refresh_from_db()
    assert (matter.status, matter.court) == (MatterStatus.FILED, "法院")


def make_matters(supervisor, n):
    for i in range(n):
        case = third_party_case()
        case_request_escalation(case_id=case.pk, stage_code="litigation", requested_by=UserFactory(username=f"r{i}"))
        case_approve_escalation(case_id=case.pk, approver=supervisor, now=NOW)


def test_pages_use_a_fixed_number_of_queries(client, supervisor, legal_user, django_assert_num_queries):
    make_agency("A")
    make_agency("B")
    make_matters(supervisor, 1)
    for m in LegalMatter.objects.all():
        matter_mark_letter_sent(matter_id=m.pk, user=legal_user)
        matter_file(matter_id=m.pk, user=legal_user, court="C", court_case_number="N", filed_on=dt.date(2026, 4, 9))
        Hearing.objects.create(matter=m, at=dt.datetime(2027, 1, 5, 9, tzinfo=SHANGHAI))
    client.force_login(legal_user)
    counts = {}
    for grow in (0, 3):
        make_matters(supervisor, grow)
        for _ in range(grow):
            third_party_case()
        for m in LegalMatter.objects.filter(status=MatterStatus.APPROVED):
            Hearing.objects.create(matter=m, at=dt.datetime(2027, 1, 6, 9, tzinfo=SHANGHAI))
        for name in PAGES:
            with CaptureQueriesContext(connection) as queries:
                assert client.get(reverse(name)).status_code == 200
            counts.setdefault(name, []).append(len(queries))
        matter = LegalMatter.objects.first()
        with CaptureQueriesContext(connection) as queries:
            client.get(reverse("legal:matter", args=[matter.pk]))
        counts.setdefault("matter", []).append(len(queries))
    for name, (few, many) in counts.items():
        assert few == many, f"{name}: {few} queries with few rows, {many} with more"
    with django_assert_num_queries(counts["legal:matters"][0]):
        client.get(reverse("legal:matters"))


def test_recall_and_place_elsewhere_from_the_placements_page(client, legal_user):
    first = make_agency("A")
    second = make_agency("B")
    case = third_party_case()
    placement = Placement.objects.get(case=case)
    assert placement.agency == first
    client.force_login(legal_user)
    response = client.post(
        reverse("legal:placement_recall", args=[placement.pk]), {"note": "no progress", "replace": "on"}
    )
    assert response.status_code == 302
    assert Placement.objects.get(case=case, recalled_at__isnull=True).agency == second
    again = client.post(reverse("legal:placement_recall", args=[placement.pk]))
    assert "already recalled" in client.get(again.url).content.decode()


def test_an_unplaced_case_is_placed_by_hand_from_the_page(client, supervisor):
    make_agency("Full", capacity=0)
    case = third_party_case()
    later = make_agency("New")
    client.force_login(supervisor)
    page = client.get(reverse("legal:placements")).content.decode()
    assert case.loan.external_id in page
    client.post(reverse("legal:case_place", args=[case.pk]), {"agency": later.pk})
    assert Placement.objects.get(case=case, recalled_at__isnull=True).agency == later


# --- agency users ---------------------------------------------------------------------------


def test_agency_users_see_only_their_agencys_current_placements(client, legal_user):
    ours = make_agency("A ours")
    theirs = make_agency("B theirs")
    our_case = third_party_case()
    their_case = third_party_case()
    assert Placement.objects.get(case=their_case).agency == theirs
    recalled_case = third_party_case()
    Placement.objects.filter(case=recalled_case).update(agency=ours)
    placement_recall(placement_id=Placement.objects.get(case=recalled_case).pk, user=legal_user)
    unplaced_elsewhere = third_party_case()
    Placement.objects.filter(case=unplaced_elsewhere).delete()

    agent = make_agency_user("agent1", ours)
    assert set(cases_for_user(agent)) == {our_case}
    assert case_visible_to(case_id=our_case.pk, user=agent)
    assert not case_visible_to(case_id=their_case.pk, user=agent)
    assert not case_visible_to(case_id=recalled_case.pk, user=agent)

    client.force_login(agent)
    assert client.get(f"/api/v1/cases/{our_case.pk}/").status_code == 200
    assert client.get(f"/api/v1/cases/{their_case.pk}/").status_code == 404
    assert client.get(f"/api/v1/cases/{recalled_case.pk}/").status_code == 404
    listed = client.get("/api/v1/cases/").json()
    assert [row["id"] for row in listed["results"]] == [our_case.pk]


def test_an_agency_user_without_a_membership_sees_nothing():
    make_agency("A")
    third_party_case()
    lonely = UserFactory(username="agent-x", role="agency")
    assert list(cases_for_user(lonely)) == []


def test_the_approval_page_says_why_a_time_barred_case_cannot_enter_litigation(client, supervisor):
    from cases.services import case_evaluate_loan
    from tests.factories import loan_with_schedule

    loan = loan_with_schedule([dt.date(2021, 1, 1)])
    case = case_evaluate_loan(loan=loan, as_of=dt.date(2021, 5, 1))
    assert case.pending_stage.code == "litigation"
    client.force_login(supervisor)
    response = client.post(reverse("approval_decide", args=[case.pk]), {"decision": "approve"}, follow=True)
    page = response.content.decode()
    assert "Time-barred" in page and "2024-01-01" in page
    case.refresh_from_db()
    assert case.pending_stage.code == "litigation"
    assert not LegalMatter.objects.filter(case=case).exists()


def test_the_pages_speak_chinese(client, matter, legal_user):
    legal_user.language = "zh-hans"
    legal_user.save(update_fields=["language"])
    client.force_login(legal_user)
    page = client.get(reverse("legal:matters"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "法律案件" in page and "已批准" in page
    detail = client.get(reverse("legal:matter", args=[matter.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "律师函已发出" in detail and "时间线" in detail


def test_agency_users_log_contacts_and_promises_on_their_placements_only(legal_user):
    from decimal import Decimal

    from cases.exceptions import PermissionDenied
    from cases.models import ContactAttempt, PromiseToPay
    from cases.services.work import contact_log, promise_create

    ours = make_agency("A ours")
    make_agency("B theirs")
    our_case = third_party_case()
    their_case = third_party_case()
    agent = make_agency_user("agent1", ours)

    contact_log(case=our_case, by=agent, channel="phone", outcome="no_answer", note="tried the mobile")
    promise_create(case=our_case, by=agent, amount=Decimal("100.00"), due_date=business_date() + dt.timedelta(days=3))
    assert ContactAttempt.objects.filter(case=our_case, collector=agent).count() == 1
    assert PromiseToPay.objects.filter(case=our_case).count() == 1

    with pytest.raises(PermissionDenied):
        contact_log(case=their_case, by=agent, channel="phone", outcome="no_answer")
    placement_recall(placement_id=Placement.objects.get(case=our_case).pk, user=legal_user)
    with pytest.raises(PermissionDenied):
        contact_log(case=our_case, by=agent, channel="phone", outcome="no_answer")
    assert ContactAttempt.objects.filter(collector=agent).count() == 1
