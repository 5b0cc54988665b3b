"""Django admin for notifications: template checks and preview, approval, forbidden
wording, and the outbox and SMS records shown read-only."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from cases.models import Borrower
from notifications.models import ForbiddenPhrase, InboundSms, MessageTemplate, OutboundMessage, SmsOptOut
from notifications.templating import validate_template
from tests.factories import BorrowerFactory, CaseFactory, LoanFactory, UserFactory, loan_with_schedule, stage

pytestmark = pytest.mark.django_db


def template_form(template: MessageTemplate, **changes) -> dict:
    """The change form's POST for ``template`` with ``changes`` applied."""
    values = {
        "name": template.name,
        "stage": template.stage_id or "",
        "channel": template.channel,
        "language": template.language,
        "active": template.active,
        "subject": template.subject,
        "body": template.body,
        "html_body": template.html_body,
        "approved": template.approved,
        "_save": "Save",
    } | changes
    # An unticked checkbox is absent from a browser's POST.
    return {k: ("on" if v is True else v) for k, v in values.items() if v is not False}


def change_url(obj) -> str:
    return reverse(f"admin:notifications_{obj._meta.model_name}_change", args=[obj.pk])


def template_named(name: str) -> MessageTemplate:
    return MessageTemplate.objects.get(name=name)


def open_case(*, name: str, language: str, phone: str = "+8613800005678"):
    borrower = BorrowerFactory(name=name, language=language, phone=phone)
    loan = loan_with_schedule(["2026-03-01"], amount=Decimal("1050.00"), borrower=borrower)
    return CaseFactory(loan=loan, stage=stage("reminder"), days_past_due=12, overdue_amount=Decimal("1050.00"))


def message(case, *, channel: str = "sms", **fields) -> OutboundMessage:
    borrower = case.loan.borrower
    values = {
        "case": case,
        "borrower": borrower,
        "channel": channel,
        "to": borrower.phone if channel == "sms" else borrower.email,
        "language": borrower.language,
        "action": channel,
        "idempotency_key": f"test:{OutboundMessage.objects.count()}:{case.pk}",
        "body": "Dear borrower. Reply STOP to opt out.",
    } | fields
    return OutboundMessage.objects.create(**values)


# --- Templates: list, checks, preview -------------------------------------------------------


def test_it_lists_and_filters_the_templates(admin_client):
    response = admin_client.get(reverse("admin:notifications_messagetemplate_changelist"), {"channel": "sms"})

    assert response.status_code == 200
    names = {t.name for t in response.context["cl"].result_list}
    assert len(names) == 10
    assert "warning-sms-zh-hans" in names
    assert all("-sms-" in name for name in names)


def test_it_refuses_forbidden_wording_and_leaves_the_template_unchanged(admin_client):
    template = template_named("reminder-sms-en")
    before = (template.body, template.approved, template.updated_at)
    body = template.body.replace("Please pay", "Pay now or we will call your employer. Please pay")

    response = admin_client.post(change_url(template), template_form(template, body=body))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["body"] == [
        'Forbidden wording "your employer": Mentions contacting the borrower\'s employer.'
    ]
    assert escape('Forbidden wording "your employer"') in response.content.decode()
    template.refresh_from_db()
    assert (template.body, template.approved, template.updated_at) == before


def test_it_refuses_an_unknown_variable_on_the_add_form(admin_client):
    data = template_form(
        MessageTemplate(
            name="manual-sms-en", channel="sms", language="en", body="ID {{ national_id }}. {{ opt_out_line }}"
        )
    )

    response = admin_client.post(reverse("admin:notifications_messagetemplate_add"), data)

    assert response.status_code == 200
    assert "national_id" in response.context["adminform"].form.errors["body"][0]
    assert not MessageTemplate.objects.filter(name="manual-sms-en").exists()


def test_it_shows_the_form_help_with_the_variables_and_the_approval_rule(admin_client):
    response = admin_client.get(change_url(template_named("warning-sms-en")))

    content = response.content.decode()
    assert "<code>{{ borrower_name }}</code>" in content
    assert "<code>{{ opt_out_line }}</code>" in content
    assert "withdraws its approval" in content


def test_it_previews_a_template_on_an_open_case_in_its_language(admin_client):
    case = open_case(name="王芳", language="zh-hans")
    open_case(name="John Smith", language="en", phone="+8613800001111")

    response = admin_client.get(change_url(template_named("reminder-sms-zh-hans")))

    content = response.content.decode()
    assert response.status_code == 200
    assert "尊敬的王芳您好" in content
    assert "应还款¥1,050.00已逾期12天" in content
    assert reverse("admin:cases_case_change", args=[case.pk]) in content
    assert "John Smith" not in content
    assert "UCS-2, 3 segments for the preview above" in content


def test_it_previews_with_sample_values_when_no_case_speaks_the_language(admin_client):
    open_case(name="王芳", language="zh-hans")

    response = admin_client.get(change_url(template_named("warning-sms-en")))

    content = response.content.decode()
    assert "Rendered with sample values" in content
    assert "Dear Alex Chen" in content
    assert "GSM-7, 2 segments for the preview above" in content


def test_it_previews_an_emails_html_part_in_a_sandbox(admin_client):
    response = admin_client.get(change_url(template_named("warning-email-zh-hans")))

    content = response.content.decode()
    assert 'sandbox=""' in content
    assert "srcdoc=" in content
    assert escape('<a href="http://') in content  # the HTML part, escaped into the attribute
    assert "Not an SMS." in content


# --- Approval -------------------------------------------------------------------------------


def test_it_approves_selected_templates_and_records_who(admin_client, admin_user):
    names = ["warning-sms-en", "warning-email-en"]
    MessageTemplate.objects.filter(name__in=names).update(approved=False, approved_at=None)
    ids = list(MessageTemplate.objects.filter(name__in=names).values_list("pk", flat=True))

    response = admin_client.post(
        reverse("admin:notifications_messagetemplate_changelist"),
        {"action": "approve_selected", "_selected_action": ids},
        follow=True,
    )

    assert "Approved 2 templates." in response.content.decode()
    for template in MessageTemplate.objects.filter(pk__in=ids):
        assert template.approved
        assert template.approved_by == admin_user
        assert template.approved_at is not None


def test_it_will_not_approve_a_template_that_fails_the_checks(admin_client):
    MessageTemplate.objects.filter(name="phone-sms-en").update(approved=False, body="Pay, deadbeat.")
    template = template_named("phone-sms-en")

    response = admin_client.post(
        reverse("admin:notifications_messagetemplate_changelist"),
        {"action": "approve_selected", "_selected_action": [template.pk]},
        follow=True,
    )

    content = response.content.decode()
    assert "Not approved: phone-sms-en" in content
    assert "deadbeat" in content
    template.refresh_from_db()
    assert (template.approved, template.approved_by) == (False, None)


def test_it_records_the_approver_when_saved_with_approved_ticked(admin_client, admin_user):
    MessageTemplate.objects.filter(name="reminder-email-zh-hans").update(approved=False, approved_at=None)
    template = template_named("reminder-email-zh-hans")

    response = admin_client.post(change_url(template), template_form(template, approved=True))

    assert response.status_code == 302
    template.refresh_from_db()
    assert template.approved
    assert template.approved_by == admin_user
    assert template.approved_at is not None


def test_it_withdraws_approval_when_an_approved_templates_text_changes(admin_client):
    template = template_named("reminder-sms-en")
    body = template.body.replace("Please pay", "Kindly pay")

    response = admin_client.post(change_url(template), template_form(template, body=body), follow=True)

    assert "no longer approved" in response.content.decode()
    template.refresh_from_db()
    assert template.body == body
    assert (template.approved, template.approved_by, template.approved_at) == (False, None, None)


def test_it_keeps_approval_when_the_text_comes_back_unchanged_from_the_browser(admin_client):
    template = template_named("warning-email-en")
    approved_at = template.approved_at
    # A browser sends a textarea's lines as CRLF.
    crlf = {field: getattr(template, field).replace("\n", "\r\n") for field in ("body", "html_body")}

    response = admin_client.post(change_url(template), template_form(template, active=True, **crlf))

    assert response.status_code == 302
    template.refresh_from_db()
    assert template.approved
    assert template.approved_at == approved_at
    assert "\r" not in template.body


def test_it_unapproves_when_the_box_is_unticked(admin_client):
    template = template_named("phone-sms-zh-hans")

    admin_client.post(change_url(template), template_form(template, approved=False))

    template.refresh_from_db()
    assert (template.approved, template.approved_at) == (False, None)


# --- Forbidden phrases ----------------------------------------------------------------------


def test_it_lets_admins_extend_the_forbidden_wording(admin_client):
    response = admin_client.post(
        reverse("admin:notifications_forbiddenphrase_add"),
        {"phrase": "final warning", "language": "en", "why": "Sounds like a threat", "active": "on"},
    )

    assert response.status_code == 302
    assert ForbiddenPhrase.objects.filter(phrase="final warning", language="en").exists()
    errors = validate_template(
        subject="", body="Final warning. {{ opt_out_line }}", html_body="", language="en", channel="sms"
    )
    assert errors["body"] == ['Forbidden wording "final warning": Sounds like a threat.']


# --- Outbox and SMS records -----------------------------------------------------------------


def test_it_keeps_the_outbox_read_only(admin_client):
    row = message(open_case(name="王芳", language="zh-hans"))

    assert admin_client.get(reverse("admin:notifications_outboundmessage_add")).status_code == 403
    page = admin_client.get(change_url(row))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.post(change_url(row), {"status": "sent"}).status_code == 403
    delete_url = reverse("admin:notifications_outboundmessage_delete", args=[row.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.status == "queued"


def test_it_masks_phone_numbers_in_the_outbox(admin_client):
    row = message(open_case(name="王芳", language="zh-hans", phone="+8613812345678"))

    changelist = admin_client.get(reverse("admin:notifications_outboundmessage_changelist")).content.decode()
    detail = admin_client.get(change_url(row)).content.decode()

    assert "*********5678" in changelist
    assert "+8613812345678" not in changelist
    assert "+8613812345678" not in detail


def test_it_finds_outbox_messages_by_provider_id_or_case_id(admin_client):
    first = message(open_case(name="王芳", language="zh-hans"), provider_id="SM0123456789abcdef")
    second = message(open_case(name="李娜", language="zh-hans", phone="+8613800002222"))
    url = reverse("admin:notifications_outboundmessage_changelist")

    by_provider = admin_client.get(url, {"q": "SM0123456789abcdef"}).context["cl"].result_list
    by_case = admin_client.get(url, {"q": str(second.case_id)}).context["cl"].result_list
    by_nothing = admin_client.get(url, {"q": "SM0123"}).context["cl"].result_list

    assert [m.pk for m in by_provider] == [first.pk]
    assert [m.pk for m in by_case] == [second.pk]
    assert list(by_nothing) == []


def test_it_filters_the_outbox_by_reason_including_each_kind_of_hold(admin_client):
    case = open_case(name="王芳", language="zh-hans")
    held = message(case, status="suppressed", reason="hold:dispute")
    message(case, status="deferred", reason="quiet_hours")

    response = admin_client.get(reverse("admin:notifications_outboundmessage_changelist"), {"reason": "hold"})

    assert [m.pk for m in response.context["cl"].result_list] == [held.pk]


def test_it_keeps_the_outbox_changelist_query_count_flat(admin_client):
    url = reverse("admin:notifications_outboundmessage_changelist")
    case = open_case(name="王芳", language="zh-hans")
    for _ in range(3):
        message(case)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for i in range(20):
        other = CaseFactory(loan=LoanFactory(borrower=BorrowerFactory(phone=f"+861380000{i:04d}")))
        message(other)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url)

    assert len(response.context["cl"].result_list) == 23
    assert len(many) == len(few)


def test_it_keeps_inbound_sms_read_only_and_masked(admin_client):
    inbound = InboundSms.objects.create(provider_id="SM1", from_number="+8613812345678", body="TD", action="opt_out")

    assert admin_client.get(reverse("admin:notifications_inboundsms_add")).status_code == 403
    assert admin_client.post(change_url(inbound), {"body": "x"}).status_code == 403
    changelist = admin_client.get(reverse("admin:notifications_inboundsms_changelist")).content.decode()
    assert "*********5678" in changelist
    assert "+8613812345678" not in changelist


def test_it_records_an_opt_out_added_in_the_admin_through_the_service(admin_client):
    borrower = BorrowerFactory(phone="+8613812340000")

    response = admin_client.post(reverse("admin:notifications_smsoptout_add"), {"phone": "+8613812340000"})

    assert response.status_code == 302
    record = SmsOptOut.objects.get(phone="+8613812340000")
    assert (record.opted_out, record.source) == (True, "admin")
    assert Borrower.objects.get(pk=borrower.pk).sms_opt_out
    assert admin_client.post(reverse("admin:notifications_smsoptout_add"), {"phone": "12345"}).status_code == 200
    delete_url = reverse("admin:notifications_smsoptout_delete", args=[record.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403


def test_it_opts_a_number_back_in_through_the_service(admin_client):
    borrower = BorrowerFactory(phone="+8613812340001", sms_opt_out=True)
    record = SmsOptOut.objects.create(phone="+8613812340001", source="keyword", keyword="TD")

    response = admin_client.post(change_url(record), {"_save": "Save"})  # "opted out" unticked

    assert response.status_code == 302
    record.refresh_from_db()
    assert not record.opted_out
    assert not Borrower.objects.get(pk=borrower.pk).sms_opt_out


# --- Roles ----------------------------------------------------------------------------------


def test_it_grants_the_roles_their_notification_permissions():
    admin = UserFactory(role="admin", is_staff=True)
    supervisor = UserFactory(role="supervisor")
    collector = UserFactory(role="collector")

    assert admin.has_perms(
        [
            "notifications.change_messagetemplate",
            "notifications.add_forbiddenphrase",
            "notifications.change_smsoptout",
            "notifications.view_outboundmessage",
            "notifications.view_inboundsms",
        ]
    )
    assert not admin.has_perm("notifications.change_outboundmessage")
    assert supervisor.has_perms(["notifications.view_outboundmessage", "notifications.view_messagetemplate"])
    assert not supervisor.has_perm("notifications.change_messagetemplate")
    assert collector.has_perm("notifications.view_messagetemplate")
    assert not collector.has_perm("notifications.view_outboundmessage")


def test_it_lets_a_staff_member_of_the_admin_group_edit_a_template(client):
    user = UserFactory(role="admin", is_staff=True)
    assert Group.objects.get(name="admin") in user.groups.all()
    client.force_login(user)
    template = template_named("warning-sms-en")
    body = template.body.replace("Please pay", "Please make your payment")

    response = client.post(change_url(template), template_form(template, body=body))

    assert response.status_code == 302
    template.refresh_from_db()
    assert template.body == body
    assert not template.approved
