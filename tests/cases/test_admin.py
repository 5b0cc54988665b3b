"""Django admin: stage rules, search, read-only money and timeline, flat query counts."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from cases import admin as cases_admin
from cases.models import Borrower, Case, CaseEvent, CaseStatus, EventKind, Loan, Payment, Stage
from tests.factories import BorrowerFactory, CaseFactory, LoanFactory, UserFactory, loan_with_schedule, stage

pytestmark = pytest.mark.django_db


def stage_thresholds() -> dict[str, int]:
    return dict(Stage.objects.values_list("code", "entry_dpd"))


def stage_form(rule: Stage, **changes) -> dict:
    """The change form's POST for `rule`, with `changes` applied."""
    values = {
        "order": rule.order,
        "code": rule.code,
        "name_en": rule.name_en,
        "name_zh_hans": rule.name_zh_hans,
        "entry_dpd": rule.entry_dpd,
        "requires_approval": rule.requires_approval,
        "entry_actions": json.dumps(rule.entry_actions),
        "repeat_interval_days": rule.repeat_interval_days or "",
        "active": rule.active,
        "_save": "Save",
    } | changes
    # An unticked checkbox is absent from a browser's POST.
    return {k: ("on" if v is True else v) for k, v in values.items() if v is not False}


def stage_list(**changes: dict) -> dict:
    """The changelist's list_editable POST for every rule; `reminder={"entry_dpd": 9}` changes one."""
    rules = list(Stage.objects.order_by("order"))
    data = {
        "form-TOTAL_FORMS": len(rules),
        "form-INITIAL_FORMS": len(rules),
        "form-MIN_NUM_FORMS": 0,
        "form-MAX_NUM_FORMS": 1000,
        "_save": "Save",
    }
    for i, rule in enumerate(rules):
        row = {
            "id": rule.pk,
            "entry_dpd": rule.entry_dpd,
            "requires_approval": rule.requires_approval,
            "repeat_interval_days": rule.repeat_interval_days or "",
            "active": rule.active,
        } | changes.get(rule.code, {})
        data.update({f"form-{i}-{k}": ("on" if v is True else v) for k, v in row.items() if v is not False})
    return data


def change_url(obj) -> str:
    return reverse(f"admin:cases_{obj._meta.model_name}_change", args=[obj.pk])


# --- Stage rules ------------------------------------------------------------------------


def test_it_lists_the_stage_rules_with_editable_thresholds(admin_client):
    response = admin_client.get(reverse("admin:cases_stage_changelist"))

    assert response.status_code == 200
    assert [s.code for s in response.context["cl"].result_list] == [
        "warning",
        "reminder",
        "phone",
        "third_party",
        "litigation",
    ]
    assert 'name="form-0-entry_dpd"' in response.content.decode()
    assert 'name="form-0-active"' in response.content.decode()


def test_it_refuses_an_unordered_threshold_on_the_change_form(admin_client):
    reminder = stage("reminder")

    response = admin_client.post(change_url(reminder), stage_form(reminder, entry_dpd=40))

    assert response.status_code == 200
    assert "Thresholds must rise with the order" in response.context["adminform"].form.errors["entry_dpd"][0]
    assert "Thresholds must rise with the order" in response.content.decode()
    assert stage("reminder").entry_dpd == 4


def test_it_saves_a_valid_threshold_on_the_change_form(admin_client):
    reminder = stage("reminder")

    response = admin_client.post(change_url(reminder), stage_form(reminder, entry_dpd=6))

    assert response.status_code == 302
    assert stage("reminder").entry_dpd == 6


def test_it_refuses_a_zero_threshold_with_a_form_error(admin_client):
    warning = stage("warning")

    response = admin_client.post(change_url(warning), stage_form(warning, entry_dpd=0))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["entry_dpd"]
    assert stage("warning").entry_dpd == 1


def test_it_refuses_an_unordered_set_in_the_changelist(admin_client):
    before = stage_thresholds()

    response = admin_client.post(reverse("admin:cases_stage_changelist"), stage_list(phone={"entry_dpd": 3}))

    assert response.status_code == 200
    errors = response.context["cl"].formset.non_form_errors()
    assert len(errors) == 1
    assert "phone" in errors[0]
    assert "Thresholds must rise with the order" in response.content.decode()
    assert stage_thresholds() == before


def test_it_refuses_two_equal_thresholds_in_the_changelist(admin_client):
    before = stage_thresholds()

    response = admin_client.post(reverse("admin:cases_stage_changelist"), stage_list(third_party={"entry_dpd": 91}))

    assert response.status_code == 200
    assert response.context["cl"].formset.non_form_errors()
    assert stage_thresholds() == before


def test_it_saves_thresholds_moved_past_each_other_in_one_changelist_save(admin_client):
    # Either change alone would clash with the other's stored value (reminder at 8 while
    # phone is still 8); together they are in order.
    response = admin_client.post(
        reverse("admin:cases_stage_changelist"), stage_list(reminder={"entry_dpd": 8}, phone={"entry_dpd": 20})
    )

    assert response.status_code == 302
    assert stage_thresholds() == {"warning": 1, "reminder": 8, "phone": 20, "third_party": 31, "litigation": 91}


def test_it_ignores_a_rule_deactivated_in_the_same_changelist_save(admin_client):
    response = admin_client.post(
        reverse("admin:cases_stage_changelist"), stage_list(phone={"entry_dpd": 2, "active": False})
    )

    assert response.status_code == 302
    phone = stage("phone")
    assert (phone.entry_dpd, phone.active) == (2, False)


def test_it_checks_rules_off_the_page_against_their_stored_values(admin_client):
    # A search shows only the reminder row; the others still count.
    reminder = stage("reminder")
    data = {
        "form-TOTAL_FORMS": 1,
        "form-INITIAL_FORMS": 1,
        "form-0-id": reminder.pk,
        "form-0-entry_dpd": 50,
        "form-0-repeat_interval_days": 3,
        "form-0-active": "on",
        "_save": "Save",
    }

    response = admin_client.post(reverse("admin:cases_stage_changelist") + "?q=reminder", data)

    assert response.status_code == 200
    assert response.context["cl"].formset.non_form_errors()
    assert stage("reminder").entry_dpd == 4


def test_it_will_not_delete_a_stage_that_has_cases(admin_client):
    warning = stage("warning")
    CaseFactory(stage=warning)

    page = admin_client.get(change_url(warning))
    delete = admin_client.post(reverse("admin:cases_stage_delete", args=[warning.pk]), {"post": "yes"})
    changelist = admin_client.get(reverse("admin:cases_stage_changelist"))

    assert "cannot be deleted" in page.content.decode()
    assert delete.status_code == 403
    assert Stage.objects.filter(pk=warning.pk).exists()
    assert changelist.context["action_form"] is None  # bulk delete was the stage list's only action


def test_it_offers_to_delete_a_stage_without_cases(admin_client):
    response = admin_client.get(reverse("admin:cases_stage_delete", args=[stage("litigation").pk]))

    assert response.status_code == 200


# --- Search on the main changelists -----------------------------------------------------


@pytest.fixture
def book():
    """A target borrower with a loan, case, payment and event, and another of each to miss."""
    target = BorrowerFactory(external_id="B-TARGET", name="李娜", phone="+8613900000001")
    loan = LoanFactory(external_id="L-TARGET", borrower=target)
    case = CaseFactory(loan=loan)
    paid_at = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    payment = Payment.objects.create(external_id="P-TARGET", loan=loan, amount=Decimal("100.00"), paid_at=paid_at)
    event = CaseEvent.objects.create(case=case, kind=EventKind.OPENED)

    other_case = CaseFactory()
    Payment.objects.create(external_id="P-OTHER", loan=other_case.loan, amount=Decimal("5.00"), paid_at=paid_at)
    CaseEvent.objects.create(case=other_case, kind=EventKind.OPENED)
    return {"borrower": target, "loan": loan, "case": case, "payment": payment, "caseevent": event}


@pytest.mark.parametrize(
    ("model_name", "term"),
    [
        ("borrower", "B-TARGET"),
        ("borrower", "李娜"),
        ("borrower", "+8613900000001"),
        ("loan", "L-TARGET"),
        ("loan", "B-TARGET"),
        ("loan", "李娜"),
        ("loan", "+8613900000001"),
        ("case", "L-TARGET"),
        ("case", "B-TARGET"),
        ("case", "李娜"),
        ("case", "+8613900000001"),
        ("payment", "P-TARGET"),
        ("payment", "L-TARGET"),
        ("payment", "+8613900000001"),
        ("caseevent", "L-TARGET"),
        ("caseevent", "李娜"),
        ("caseevent", "+8613900000001"),
    ],
)
def test_it_finds_the_right_row_by_external_id_name_or_phone(admin_client, book, model_name, term):
    response = admin_client.get(reverse(f"admin:cases_{model_name}_changelist"), {"q": term})

    assert response.status_code == 200
    assert [obj.pk for obj in response.context["cl"].result_list] == [book[model_name].pk]


@pytest.mark.parametrize(("term", "code"), [("reminder", "reminder"), ("电话催收", "phone")])
def test_it_finds_a_stage_rule_by_code_or_name(admin_client, term, code):
    response = admin_client.get(reverse("admin:cases_stage_changelist"), {"q": term})

    assert response.status_code == 200
    assert [s.code for s in response.context["cl"].result_list] == [code]


def test_it_shows_national_ids_and_phones_masked_in_the_borrower_list(admin_client):
    BorrowerFactory(national_id="110101199003074512", phone="+8613912345678")

    response = admin_client.get(reverse("admin:cases_borrower_changelist"))

    content = response.content.decode()
    assert "11************4512" in content
    assert "110101199003074512" not in content
    assert "+8613912345678" not in content


def test_it_filters_cases_by_collector_and_currency(admin_client):
    collector = UserFactory(role="collector")
    mine = CaseFactory(assigned_to=collector)
    unassigned = CaseFactory(loan=LoanFactory(currency="USD"))
    url = reverse("admin:cases_case_changelist")

    by_collector = admin_client.get(url, {"collector": collector.pk})
    by_none = admin_client.get(url, {"collector": "none"})
    by_currency = admin_client.get(url, {"currency": "USD"})

    assert [c.pk for c in by_collector.context["cl"].result_list] == [mine.pk]
    assert [c.pk for c in by_none.context["cl"].result_list] == [unassigned.pk]
    assert [c.pk for c in by_currency.context["cl"].result_list] == [unassigned.pk]


# --- Speed on a big book ----------------------------------------------------------------


def add_cases(count: int, collector: User) -> None:
    codes = ["warning", "reminder", "phone"]
    for i in range(count):
        CaseFactory(stage=stage(codes[i % 3]), assigned_to=collector if i % 2 else None)


def test_it_keeps_the_case_changelist_query_count_flat(admin_client):
    collector = UserFactory(role="collector")
    url = reverse("admin:cases_case_changelist")
    add_cases(5, collector)
    admin_client.get(url)  # warm the session, content types and the currency list

    with CaptureQueriesContext(connection) as few:
        five = admin_client.get(url)
    few_count = len(few.captured_queries)
    assert len(five.context["cl"].result_list) == 5
    add_cases(25, collector)
    with CaptureQueriesContext(connection) as many:
        thirty = admin_client.get(url)

    assert len(thirty.context["cl"].result_list) == 30
    assert len(many.captured_queries) == few_count > 0


@pytest.mark.parametrize("model_name", ["borrower", "loan", "payment", "caseevent"])
def test_it_keeps_other_big_changelists_flat(admin_client, model_name):
    def grow(count):
        for _ in range(count):
            case = CaseFactory()
            paid_at = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
            Payment.objects.create(external_id=f"P-{case.pk}", loan=case.loan, amount=Decimal("1.00"), paid_at=paid_at)
            CaseEvent.objects.create(case=case, kind=EventKind.OPENED, actor=UserFactory())

    url = reverse(f"admin:cases_{model_name}_changelist")
    grow(3)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    few_count = len(few.captured_queries)
    grow(12)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url)

    assert len(response.context["cl"].result_list) == 15
    assert len(many.captured_queries) == few_count > 0


def test_it_pages_an_unfiltered_big_table_on_the_planner_estimate(admin_client, monkeypatch):
    BorrowerFactory.create_batch(3, name="王芳")
    BorrowerFactory(name="赵磊")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cases_borrower")
    monkeypatch.setattr(cases_admin, "ESTIMATE_ABOVE", 1)
    url = reverse("admin:cases_borrower_changelist")

    with CaptureQueriesContext(connection) as unfiltered:
        everyone = admin_client.get(url)
    # Read now: the next request empties Django's query log.
    statements = [q["sql"].upper() for q in unfiltered.captured_queries]
    searched = admin_client.get(url, {"q": "王芳"})

    assert any("RELTUPLES" in sql for sql in statements)
    assert not any("COUNT(" in sql for sql in statements)
    assert everyone.context["cl"].result_count == 4
    assert searched.context["cl"].result_count == 3


def test_it_never_renders_a_select_of_big_tables():
    # An editable foreign key to these tables must be a raw id (or autocomplete) field.
    big = {Borrower, Loan, Case, Payment, User}
    request = RequestFactory().get("/")
    request.user = UserFactory(is_superuser=True, is_staff=True)
    unguarded = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "cases":
            continue
        holders = [(model, model_admin, None)] + [
            (inline.model, inline, inline.fk_name) for inline in model_admin.get_inline_instances(request)
        ]
        for held, holder, _fk_name in holders:
            if not (holder.has_change_permission(request) or holder.has_add_permission(request, None)):
                continue
            readonly = set(holder.get_readonly_fields(request))
            for field in held._meta.get_fields():
                if not (field.many_to_one and field.editable and field.related_model in big):
                    continue
                if field.related_model is model and held is not model:
                    continue  # an inline's link to its parent is not a widget
                if field.name in readonly or field.name in (*holder.raw_id_fields, *holder.autocomplete_fields):
                    continue
                unguarded.append(f"{held.__name__}.{field.name}")

    assert unguarded == []


# --- Read-only money and timeline -------------------------------------------------------


def test_it_refuses_to_change_or_delete_a_case_event(admin_client):
    case = CaseFactory()
    event = CaseEvent.objects.create(case=case, kind=EventKind.NOTE, detail={"text": "called"})
    url = change_url(event)

    view = admin_client.get(url)
    change = admin_client.post(url, {"kind": EventKind.RESOLVED, "detail": "{}", "case": case.pk})
    delete = admin_client.post(reverse("admin:cases_caseevent_delete", args=[event.pk]), {"post": "yes"})
    add = admin_client.get(reverse("admin:cases_caseevent_add"))
    bulk = admin_client.post(
        reverse("admin:cases_caseevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )

    assert view.status_code == 200
    assert (change.status_code, delete.status_code, add.status_code) == (403, 403, 403)
    assert bulk.status_code in (200, 302)
    event.refresh_from_db()
    assert (event.kind, event.detail) == (EventKind.NOTE, {"text": "called"})
    model_admin = admin.site._registry[CaseEvent]
    request = RequestFactory().get("/")
    request.user = User.objects.get(username="admin")
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    assert not model_admin.has_add_permission(request)


def test_it_shows_the_case_timeline_read_only(admin_client):
    case = CaseFactory()
    CaseEvent.objects.create(case=case, kind=EventKind.STAGE_CHANGED, detail={"to": "reminder-xyz"})
    CaseEvent.objects.create(case=case, kind=EventKind.NOTE, actor=User.objects.get(username="admin"))

    response = admin_client.get(change_url(case))

    content = response.content.decode()
    assert response.status_code == 200
    timeline = next(f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "events")
    assert len(timeline.formset.forms) == 2
    assert (timeline.has_add_permission, timeline.has_change_permission, timeline.has_delete_permission) == (
        False,
        False,
        False,
    )
    assert "reminder-xyz" in content
    assert "Stage changed" in content
    assert 'name="events-0-kind"' not in content
    assert 'name="events-0-DELETE"' not in content


def test_it_keeps_payments_read_only(admin_client):
    loan = loan_with_schedule([dt.date(2026, 3, 1)])
    paid_at = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    payment = Payment.objects.create(external_id="P1", loan=loan, amount=Decimal("100.00"), paid_at=paid_at)

    view = admin_client.get(change_url(payment))
    change = admin_client.post(change_url(payment), {"external_id": "P1", "amount": "999.00", "loan": loan.pk})
    add = admin_client.get(reverse("admin:cases_payment_add"))

    assert view.status_code == 200
    assert 'name="amount"' not in view.content.decode()
    assert (change.status_code, add.status_code) == (403, 403)
    payment.refresh_from_db()
    assert payment.amount == Decimal("100.00")


def test_it_shows_a_loans_installments_with_paid_amounts_read_only(admin_client):
    loan = loan_with_schedule([dt.date(2026, 3, 1), dt.date(2026, 4, 1)])
    loan.installments.filter(sequence=1).update(paid_amount=Decimal("250.00"))

    response = admin_client.get(change_url(loan))

    content = response.content.decode()
    assert response.status_code == 200
    assert "250.00" in content
    assert "750.00" in content  # what remains on the first installment
    assert 'name="installments-0-paid_amount"' not in content
    assert reverse("admin:cases_loan_add") not in content


# --- Reassigning a case -----------------------------------------------------------------


def case_form(admin_client, case: Case, **values) -> dict:
    """The case change form's POST: its only field plus the inlines' management forms."""
    page = admin_client.get(change_url(case))
    data = {"_save": "Save", **values}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): management[name].value() for name in management.fields})
    return data


def test_it_reassigns_a_case_through_the_service(admin_client):
    collector = UserFactory(role="collector")
    case = CaseFactory()
    CaseEvent.objects.create(case=case, kind=EventKind.OPENED)

    response = admin_client.post(change_url(case), case_form(admin_client, case, assigned_to=collector.pk))

    assert response.status_code == 302
    case.refresh_from_db()
    assert case.assigned_to == collector
    assigned = CaseEvent.objects.get(case=case, kind=EventKind.ASSIGNED)
    assert assigned.actor.username == "admin"
    assert assigned.detail["to"] == collector.pk


def test_it_refuses_to_give_a_case_to_someone_who_is_not_a_collector(admin_client):
    outsider = UserFactory()
    case = CaseFactory()

    response = admin_client.post(change_url(case), case_form(admin_client, case, assigned_to=outsider.pk))

    assert response.status_code == 200
    assert "is not an active collector" in response.content.decode()
    case.refresh_from_db()
    assert case.assigned_to is None
    assert not CaseEvent.objects.filter(case=case, kind=EventKind.ASSIGNED).exists()


def test_it_does_not_let_the_admin_edit_case_state(admin_client):
    case = CaseFactory()
    data = case_form(admin_client, case, status=CaseStatus.RESOLVED, days_past_due=0, outstanding="0.00")

    response = admin_client.post(change_url(case), data)

    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.status, case.days_past_due, case.outstanding) == (CaseStatus.OPEN, 2, Decimal("1000.00"))
    assert admin_client.get(reverse("admin:cases_case_add")).status_code == 403
