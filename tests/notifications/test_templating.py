"""Message templates: contexts for many cases, rendering in both languages, the checks on
an admin's text, SMS segment counts, and the default templates the migration seeds."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.models import Installment
from notifications.models import ForbiddenPhrase, MessageTemplate
from notifications.templating import (
    VARIABLES,
    _compiled,
    build_contexts,
    find_templates,
    format_money,
    render,
    sample_context,
    sms_segments,
    validate_template,
)
from tests.factories import BorrowerFactory, CaseFactory, loan_with_schedule, stage

pytestmark = pytest.mark.django_db

STAGES = ("warning", "reminder", "phone", "third_party", "litigation")
OPT_OUT = "{{ opt_out_line }}"


def open_case(
    *,
    name: str = "张伟",
    language: str = "zh-hans",
    due_dates=(dt.date(2026, 3, 1), dt.date(2026, 4, 1)),
    amount: str = "1050.00",
    currency: str = "CNY",
    days_past_due: int = 12,
    stage_code: str = "reminder",
):
    borrower = BorrowerFactory(name=name, language=language)
    loan = loan_with_schedule(due_dates, amount=Decimal(amount), borrower=borrower, currency=currency)
    return CaseFactory(
        loan=loan,
        stage=stage(stage_code),
        days_past_due=days_past_due,
        overdue_amount=Decimal(amount),
        outstanding=Decimal(amount) * len(due_dates),
    )


def context_for(case, channel: str) -> dict[str, str]:
    return build_contexts([case.pk], channel=channel)[case.pk]


def sms(body: str, language: str = "en") -> dict[str, list[str]]:
    return validate_template(subject="", body=body, html_body="", language=language, channel="sms")


# --- Contexts and rendering -----------------------------------------------------------------


def test_it_renders_a_chinese_sms_with_the_name_amount_and_date():
    case = open_case(name="张伟", language="zh-hans")
    template = MessageTemplate.objects.get(name="reminder-sms-zh-hans")

    rendered = render(template, context_for(case, "sms"))

    assert "尊敬的张伟您好" in rendered.body
    assert "应还款¥1,050.00已逾期12天" in rendered.body
    assert "2026年3月1日" in rendered.body
    assert case.loan.external_id in rendered.body
    assert rendered.body.endswith("回复TD退订")
    assert (rendered.subject, rendered.html_body) == ("", "")


def test_it_renders_an_english_email_with_the_html_part_escaped(settings):
    settings.PUBLIC_BASE_URL = "https://portal.example.com"
    case = open_case(name="Wei O'Brien <Jr>", language="en", days_past_due=1)
    template = MessageTemplate.objects.get(name="warning-email-en")

    rendered = render(template, context_for(case, "email"))

    reference = case.loan.external_id
    assert rendered.subject == f"Payment reminder for loan {reference}"
    assert rendered.body.startswith("Dear Wei O'Brien <Jr>,")
    assert "the payment of ¥1,050.00" in rendered.body
    assert "due on 1 March 2026" in rendered.body
    assert f"https://portal.example.com/pay/{reference}/" in rendered.body
    assert rendered.body.endswith("reply to this message with the word UNSUBSCRIBE.")
    # The HTML part escapes what the borrower's record holds; the text part shows it as is.
    assert "Wei O&#x27;Brien &lt;Jr&gt;" in rendered.html_body
    assert "<Jr>" not in rendered.html_body
    assert f'<a href="https://portal.example.com/pay/{reference}/"' in rendered.html_body


def test_it_pluralises_days_in_english():
    template = MessageTemplate.objects.get(name="reminder-sms-en")

    one = render(template, context_for(open_case(language="en", days_past_due=1), "sms"))
    five = render(template, context_for(open_case(language="en", days_past_due=5), "sms"))

    assert "is now 1 day overdue" in one.body
    assert "is now 5 days overdue" in five.body


def test_it_formats_money_with_a_symbol_or_the_currency_code():
    case = open_case(language="en", amount="12345.5", currency="USD")

    context = context_for(case, "sms")

    assert (context["amount_due"], context["outstanding"], context["currency"]) == (
        "US$12,345.50",
        "US$24,691.00",
        "USD",
    )
    assert format_money(Decimal("1050"), "CNY") == "¥1,050.00"
    assert format_money(Decimal("0.5"), "CHF") == "CHF 0.50"


def test_it_takes_the_due_date_of_the_oldest_installment_not_fully_paid():
    case = open_case(language="en", due_dates=(dt.date(2026, 1, 5), dt.date(2026, 2, 5), dt.date(2026, 3, 5)))
    first, second, _third = Installment.objects.filter(loan=case.loan).order_by("due_date")
    Installment.objects.filter(pk=first.pk).update(paid_amount=first.amount)
    Installment.objects.filter(pk=second.pk).update(paid_amount=Decimal("1.00"))
    settled = open_case(language="zh-hans", due_dates=(dt.date(2026, 1, 5),))
    Installment.objects.filter(loan=settled.loan).update(paid_amount=Decimal("1050.00"))

    contexts = build_contexts([case.pk, settled.pk], channel="sms")

    assert contexts[case.pk]["due_date"] == "5 February 2026"
    assert contexts[settled.pk]["due_date"] == ""


def test_it_gives_every_documented_variable_and_nothing_else():
    case = open_case()

    for channel in ("sms", "email"):
        assert set(context_for(case, channel)) == set(VARIABLES)
    for language in ("en", "zh-hans"):
        assert set(sample_context(language)) == set(VARIABLES)


def test_it_builds_the_link_from_the_public_base_url(settings):
    settings.PUBLIC_BASE_URL = "https://pay.example.cn"
    case = open_case()

    assert context_for(case, "sms")["link"] == f"https://pay.example.cn/pay/{case.loan.external_id}/"


def test_it_words_the_opt_out_line_per_channel_and_language():
    chinese, english = open_case(language="zh-hans"), open_case(language="en")

    assert context_for(chinese, "sms")["opt_out_line"] == "回复TD退订"
    assert context_for(english, "sms")["opt_out_line"] == "Reply STOP to opt out."
    assert "退订" in context_for(chinese, "email")["opt_out_line"]
    assert "UNSUBSCRIBE" in context_for(english, "email")["opt_out_line"]


def test_it_names_the_company_from_the_setting_or_a_default(settings):
    case = open_case()
    assert context_for(case, "sms")["company_name"] == "Collections portal"

    settings.COLLECTIONS_COMPANY_NAME = "安信消费金融"

    assert context_for(case, "sms")["company_name"] == "安信消费金融"


def test_it_writes_dates_in_the_borrowers_language():
    assert sample_context("zh-hans")["due_date"] == "2026年3月1日"
    assert sample_context("en")["due_date"] == "1 March 2026"
    assert sample_context("zh-hans", channel="email")["opt_out_line"] != sample_context("zh-hans")["opt_out_line"]


def test_it_builds_contexts_for_many_cases_in_a_fixed_number_of_queries():
    cases = [open_case(name=f"借款人{i}", language=("en", "zh-hans")[i % 2]) for i in range(30)]
    few, many = [c.pk for c in cases[:5]], [c.pk for c in cases]

    with CaptureQueriesContext(connection) as for_few:
        build_contexts(few, channel="sms")
    with CaptureQueriesContext(connection) as for_many:
        contexts = build_contexts(many, channel="sms")

    assert len(for_few) == len(for_many) == 2
    assert len(contexts) == 30
    assert {contexts[c.pk]["borrower_name"] for c in cases} == {f"借款人{i}" for i in range(30)}


def test_it_parses_a_template_once_however_many_messages_it_renders():
    template = MessageTemplate.objects.get(name="reminder-sms-en")
    context = sample_context("en")
    _compiled.cache_clear()

    for _ in range(50):
        render(template, context)

    assert _compiled.cache_info().misses == 1
    template.body = "Changed for {{ borrower_name }}. {{ opt_out_line }}"
    template.save()
    assert render(template, context).body == "Changed for Alex Chen. Reply STOP to opt out."


def test_it_finds_the_active_templates_per_stage_and_language_in_one_query(django_assert_num_queries):
    stage_ids = {stage(code).pk for code in STAGES}
    MessageTemplate.objects.filter(name="phone-sms-en").update(active=False)
    MessageTemplate.objects.filter(name="warning-sms-zh-hans").update(approved=False)

    with django_assert_num_queries(1):
        found = find_templates(stage_ids, "sms")

    assert (stage("phone").pk, "en") not in found
    assert found[(stage("warning").pk, "zh-hans")].name == "warning-sms-zh-hans"  # unapproved still found
    assert len(found) == 9
    assert {t.channel for t in found.values()} == {"sms"}


# --- Checks on an admin's text --------------------------------------------------------------


def test_it_refuses_an_unknown_variable_and_names_it():
    errors = sms("Dear {{ borrower_nmae }}, ID {{ national_id }}. " + OPT_OUT)

    (message,) = errors["body"]
    assert "borrower_nmae" in message
    assert "national_id" in message
    assert "Allowed: amount_due, borrower_name" in message


@pytest.mark.parametrize(
    "body, unknown",
    [
        ("{{ amount_due|default:secret_key }} ", "secret_key"),
        ("{% if phone_number %}call us{% endif %} ", "phone_number"),
        ("{% if borrower_name %}hi{% elif not employer_name %}x{% endif %} ", "employer_name"),
    ],
)
def test_it_refuses_unknown_variables_in_filters_and_conditions(body, unknown):
    errors = sms(body + OPT_OUT)

    assert unknown in " ".join(errors["body"])


def test_it_ignores_variables_inside_a_comment():
    assert sms("{% comment %}{{ draft_note }}{% endcomment %}Pay {{ amount_due }}. " + OPT_OUT) == {}


@pytest.mark.parametrize(
    "body, detail",
    [
        ("Pay {% if amount_due %}now. ", "Unclosed tag"),
        ("Pay {{ amount_due|shout }}. ", "Invalid filter: 'shout'"),
        ("Pay {{ amount_due }. ", "Could not parse the remainder"),
        ("{% load humanize %}{{ amount_due|intcomma }} ", "humanize"),
    ],
)
def test_it_refuses_a_template_syntax_error(body, detail):
    errors = sms(body + OPT_OUT)

    (message,) = errors["body"]
    assert message.startswith("Template syntax error: ")
    assert detail in message


def test_it_refuses_tags_that_reach_outside_the_message():
    errors = sms("{% include 'base.html' %}{% now 'Y' %} " + OPT_OUT)

    (message,) = errors["body"]
    assert "include" in message
    assert "now" in message
    assert "Allowed: if, elif" in message


@pytest.mark.parametrize(
    "language, text, phrase",
    [
        ("en", "Pay now or face ARREST.", "arrest"),
        ("en", "You could go to jail.", "jail"),
        ("en", "We will call your employer about this.", "your employer"),
        ("en", "We will tell your family.", "your family"),
        ("en", "Your friends will hear of it.", "your friends"),
        ("en", "Everyone will know your shame.", "shame"),
        ("en", "Pay up, deadbeat.", "deadbeat"),
        ("en", "We will visit your home tomorrow.", "we will visit"),
        ("zh-hans", "不还款将会坐牢。", "坐牢"),
        ("zh-hans", "我们将联系您的家人。", "家人"),
        ("zh-hans", "我们将联系您通讯录里的人。", "通讯录"),
        ("zh-hans", "我们会通知您的单位。", "单位"),
        ("zh-hans", "逾期信息将被曝光。", "曝光"),
        ("zh-hans", "你这个老赖。", "老赖"),
        ("zh-hans", "我们将上门催收。", "上门"),
        ("zh-hans", "我们已报公安。", "公安"),
    ],
)
def test_it_refuses_each_kind_of_forbidden_wording_in_its_language(language, text, phrase):
    why = ForbiddenPhrase.objects.get(phrase=phrase, language=language).why

    errors = sms(f"{{{{ borrower_name }}}} {text} {OPT_OUT}", language)

    (message,) = errors["body"]
    assert f'"{phrase}"' in message
    assert why in message


def test_it_checks_a_phrase_in_its_own_language_and_a_language_less_one_in_both():
    ForbiddenPhrase.objects.create(phrase="final demand", language="", why="Too aggressive for a reminder")

    assert sms("联系家人 " + OPT_OUT, "en") == {}
    assert "final demand" in sms("This is a FINAL DEMAND. " + OPT_OUT, "en")["body"][0]
    assert "final demand" in sms("final demand " + OPT_OUT, "zh-hans")["body"][0]
    ForbiddenPhrase.objects.filter(phrase="final demand").update(active=False)
    assert sms("This is a FINAL DEMAND. " + OPT_OUT, "en") == {}


def test_it_checks_an_emails_subject_and_html_too():
    errors = validate_template(
        subject="Final notice before we call the police",
        body="Dear {{ borrower_name }}",
        html_body="<p>Dear {{ borrower_name }}, you idiot</p>",
        language="en",
        channel="email",
    )

    assert set(errors) == {"subject", "html_body"}
    assert '"police"' in errors["subject"][0]
    assert '"idiot"' in errors["html_body"][0]


def test_it_refuses_an_sms_without_the_opt_out_line():
    errors = sms("Dear {{ borrower_name }}, please pay {{ amount_due }}.")

    assert "{{ opt_out_line }}" in errors["body"][0]


@pytest.mark.parametrize(
    "body",
    [
        "Please pay. {% if borrower_name == 'x' %}{{ opt_out_line }}{% endif %}",
        "Please pay. {{ opt_out_line|slice:':0' }}",
        "Please pay. {% comment %}{{ opt_out_line }}{% endcomment %}",
    ],
)
def test_it_refuses_an_opt_out_line_that_might_not_be_printed(body):
    errors = sms(body)

    assert "{{ opt_out_line }}" in " ".join(errors["body"])


def test_it_keeps_sms_and_email_parts_apart():
    sms_errors = validate_template(
        subject="Hello", body="Pay. " + OPT_OUT, html_body="<p>Pay</p>", language="en", channel="sms"
    )
    email_errors = validate_template(subject="  ", body="Pay.", html_body="", language="en", channel="email")

    assert set(sms_errors) == {"subject", "html_body"}
    assert "An email needs a subject." in email_errors["subject"]


def test_it_accepts_a_well_formed_sms():
    assert sms("Dear {{ borrower_name }}, {{ amount_due }} is due. Pay at {{ link }}. " + OPT_OUT) == {}


# --- The default templates ------------------------------------------------------------------


def test_it_seeds_approved_templates_for_every_stage_channel_and_language():
    expected = {f"{s}-{c}-{lang}" for s in STAGES for c in ("sms", "email") for lang in ("en", "zh-hans")}

    defaults = MessageTemplate.objects.filter(name__in=expected)

    assert {t.name for t in defaults} == expected
    assert all(t.approved and t.active and t.approved_at and t.approved_by_id is None for t in defaults)
    assert {(t.stage.code, t.channel, t.language) for t in defaults} == {
        (s, c, lang) for s in STAGES for c in ("sms", "email") for lang in ("en", "zh-hans")
    }


def test_it_seeds_defaults_that_pass_every_check():
    for template in MessageTemplate.objects.all():
        errors = validate_template(
            subject=template.subject,
            body=template.body,
            html_body=template.html_body,
            language=template.language,
            channel=template.channel,
        )
        assert errors == {}, template.name


@pytest.mark.parametrize("language, name", [("en", "Mary Smith"), ("zh-hans", "李娜")])
def test_it_renders_every_default_template_for_a_real_case(language, name):
    case = open_case(name=name, language=language)
    phrases = [
        p.casefold()
        for p in ForbiddenPhrase.objects.filter(language__in=[language, ""]).values_list("phrase", flat=True)
    ]
    contexts = {channel: context_for(case, channel) for channel in ("sms", "email")}

    templates = MessageTemplate.objects.filter(language=language)
    assert templates.count() == 10
    for template in templates:
        context = contexts[template.channel]
        rendered = render(template, context)
        for variable in ("borrower_name", "amount_due", "due_date", "loan_reference", "link", "opt_out_line"):
            assert context[variable] in rendered.body, (template.name, variable)
        assert "{" not in rendered.body and "}" not in rendered.body, template.name
        assert not [p for p in phrases if p in rendered.body.casefold()], template.name
        if template.channel == "email":
            assert case.loan.external_id in rendered.subject, template.name
            assert name in rendered.html_body and f'<a href="{context["link"]}"' in rendered.html_body
            assert context["opt_out_line"] in rendered.html_body, template.name


def test_it_tells_the_litigation_stage_as_a_referral_not_a_threat():
    case = open_case(language="en", stage_code="litigation")
    rendered = render(MessageTemplate.objects.get(name="litigation-sms-en"), context_for(case, "sms"))

    assert "referred for legal review" in rendered.body
    assert "contact us" in rendered.body


# --- SMS length -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", ("GSM-7", 0)),
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("¥" * 160, ("GSM-7", 1)),  # the yen sign is in the GSM basic set
        ("€" * 80, ("GSM-7", 1)),  # 160 septets: each € is an escape plus a character
        ("a" * 159 + "€", ("GSM-7", 2)),
        ("a" * 159 + "[", ("GSM-7", 2)),
        # An escape sequence is never split across parts: the € moves to the second part.
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
        ("中" * 70, ("UCS-2", 1)),
        ("中" * 71, ("UCS-2", 2)),
        ("中" * 134, ("UCS-2", 2)),
        ("中" * 135, ("UCS-2", 3)),
        ("a" * 69 + "中", ("UCS-2", 1)),
        ("a" * 160 + "中", ("UCS-2", 3)),  # one Chinese character makes the whole message UCS-2
        ("😀" * 35, ("UCS-2", 1)),  # outside the BMP: two UTF-16 units each
        ("😀" * 36, ("UCS-2", 2)),
    ],
)
def test_it_counts_sms_segments(text, expected):
    assert sms_segments(text) == expected
