"""Default forbidden wording, default message templates for every stage, and who may
see or edit them.

The texts are firm but respectful: they state what is owed and since when, say how to pay
and invite a borrower in difficulty to get in touch. They never threaten, insult, mention
family, employer, colleagues or friends, or suggest arrest or public exposure; the
forbidden phrases below make the admin refuse such wording in any later edit.

Chinese SMS start with the sender's signature in 【】, as Chinese carriers require.
The templates are approved by the migration (approved_by empty, approved_at = now) so a
fresh install can send; admins edit them in Django admin, and an edit withdraws approval.

Safe to run on a database that already has some of these rows: existing phrases and
templates (by name, or an active one for the same stage, channel and language) are kept.
"""

from django.db import migrations
from django.utils import timezone

from cases.roles import grant

FORBIDDEN_PHRASES = [
    # (language, phrase, why)
    ("en", "arrest", "Threatens arrest; a debt is a civil matter"),
    ("en", "jail", "Threatens imprisonment; a debt is a civil matter"),
    ("en", "police", "Threatens police involvement"),
    ("en", "your family", "Mentions contacting the borrower's family"),
    ("en", "your employer", "Mentions contacting the borrower's employer"),
    ("en", "your colleagues", "Mentions contacting the borrower's colleagues"),
    ("en", "your friends", "Mentions contacting the borrower's friends"),
    ("en", "shame", "Public shaming is not allowed"),
    ("en", "we will visit", "Threatens a visit to the borrower"),
    ("en", "lawsuit will ruin", "Threatening and exaggerated legal consequences"),
    ("en", "idiot", "Insulting"),
    ("en", "deadbeat", "Insulting"),
    ("zh-hans", "通讯录", "暗示联系借款人通讯录中的人（Mentions the borrower's phone contacts）"),
    ("zh-hans", "家人", "暗示联系借款人家人（Mentions the borrower's family）"),
    ("zh-hans", "单位", "暗示联系借款人工作单位（Mentions the borrower's employer）"),
    ("zh-hans", "同事", "暗示联系借款人同事（Mentions the borrower's colleagues）"),
    ("zh-hans", "朋友", "暗示联系借款人朋友（Mentions the borrower's friends）"),
    ("zh-hans", "老赖", "侮辱性称呼（Insulting）"),
    ("zh-hans", "坐牢", "以坐牢相威胁（Threatens imprisonment）"),
    ("zh-hans", "拘留", "以拘留相威胁（Threatens detention）"),
    ("zh-hans", "公安", "以公安介入相威胁（Threatens police involvement）"),
    ("zh-hans", "曝光", "以公开曝光相威胁（Threatens public shaming）"),
    ("zh-hans", "上门", "以上门催收相威胁（Threatens a home visit）"),
    ("zh-hans", "骗子", "侮辱性称呼（Insulting）"),
]

STAGES = ("warning", "reminder", "phone", "third_party", "litigation")

SMS = {
    "en": {
        "warning": "{{ company_name }}: Dear {{ borrower_name }}, the payment of {{ amount_due }} on loan "
        "{{ loan_reference }} was due on {{ due_date }} and has not been received yet. Please pay at {{ link }}. "
        "If you have already paid, thank you. {{ opt_out_line }}",
        "reminder": "{{ company_name }}: Dear {{ borrower_name }}, {{ amount_due }} on loan {{ loan_reference }} "
        "(due {{ due_date }}) is now {{ days_past_due }} day{{ days_past_due|pluralize }} overdue. Please pay at "
        "{{ link }}. If you are having difficulty, contact us to discuss your options. {{ opt_out_line }}",
        "phone": "{{ company_name }}: Dear {{ borrower_name }}, {{ amount_due }} on loan {{ loan_reference }} has "
        "been overdue since {{ due_date }}. A member of our team will call you to help arrange payment. You can "
        "also pay at {{ link }}. {{ opt_out_line }}",
        "third_party": "{{ company_name }}: Dear {{ borrower_name }}, loan {{ loan_reference }} is "
        "{{ days_past_due }} days overdue ({{ amount_due }}, due {{ due_date }}) and has been placed with a "
        "collection agency acting for us. To resolve it, pay at {{ link }} or contact us. {{ opt_out_line }}",
        "litigation": "{{ company_name }}: Dear {{ borrower_name }}, loan {{ loan_reference }} ({{ amount_due }} "
        "overdue since {{ due_date }}) has been referred for legal review. You can still resolve it: pay at "
        "{{ link }} or contact us to agree a repayment plan. {{ opt_out_line }}",
    },
    "zh-hans": {
        "warning": "【{{ company_name }}】尊敬的{{ borrower_name }}您好，您的借款（编号{{ loan_reference }}）"
        "应于{{ due_date }}还款{{ amount_due }}，目前尚未收到。请您尽快通过 {{ link }} 还款；如已还款，请忽略本短信。"
        "{{ opt_out_line }}",
        "reminder": "【{{ company_name }}】尊敬的{{ borrower_name }}您好，您的借款（编号{{ loan_reference }}）"
        "应还款{{ amount_due }}已逾期{{ days_past_due }}天（应还日期{{ due_date }}）。请您尽快通过 {{ link }} 还款，"
        "如有困难，请及时与我们联系协商。{{ opt_out_line }}",
        "phone": "【{{ company_name }}】尊敬的{{ borrower_name }}您好，您的借款（编号{{ loan_reference }}）"
        "自{{ due_date }}起逾期，待还金额{{ amount_due }}。我们的工作人员将致电与您沟通还款安排，"
        "您也可以通过 {{ link }} 还款。{{ opt_out_line }}",
        "third_party": "【{{ company_name }}】尊敬的{{ borrower_name }}您好，您的借款（编号{{ loan_reference }}）"
        "已逾期{{ days_past_due }}天（应还日期{{ due_date }}），逾期金额{{ amount_due }}，该账户已委托合作的第三方机构跟进处理。"
        "请通过 {{ link }} 还款，或与我们联系协商解决。{{ opt_out_line }}",
        "litigation": "【{{ company_name }}】尊敬的{{ borrower_name }}您好，您的借款（编号{{ loan_reference }}）"
        "逾期金额{{ amount_due }}（自{{ due_date }}起），该账户已转交法务部门审核。您仍可通过 {{ link }} 还款，"
        "或与我们联系协商还款方案。{{ opt_out_line }}",
    },
}

# Emails: (subject, paragraphs). The text part joins the paragraphs; the HTML part puts
# each in a <p> of a simple layout and makes {{ link }} a link.
EMAIL = {
    "en": {
        "warning": (
            "Payment reminder for loan {{ loan_reference }}",
            [
                "Dear {{ borrower_name }},",
                "Our records show that the payment of {{ amount_due }} on loan {{ loan_reference }}, due on "
                "{{ due_date }}, has not been received yet.",
                "If you have already paid, thank you, and please disregard this message. Otherwise, please pay as "
                "soon as you can at {{ link }}",
                "If you are having difficulty paying, please contact us: we are ready to discuss your options.",
                "Kind regards,\n{{ company_name }}",
            ],
        ),
        "reminder": (
            "Loan {{ loan_reference }}: {{ amount_due }} is overdue",
            [
                "Dear {{ borrower_name }},",
                "The payment of {{ amount_due }} on loan {{ loan_reference }}, due on {{ due_date }}, is now "
                "{{ days_past_due }} day{{ days_past_due|pluralize }} overdue. The total outstanding on the loan is "
                "{{ outstanding }}.",
                "Please pay the overdue amount as soon as possible at {{ link }}",
                "If you cannot pay the full amount now, please contact us. We can discuss a repayment arrangement "
                "that fits your circumstances.",
                "Kind regards,\n{{ company_name }}",
            ],
        ),
        "phone": (
            "Loan {{ loan_reference }}: we would like to speak with you",
            [
                "Dear {{ borrower_name }},",
                "The payment of {{ amount_due }} on loan {{ loan_reference }} has been overdue since {{ due_date }} "
                "({{ days_past_due }} days).",
                "A member of our team will call you to help you arrange payment. You can also pay at any time at "
                "{{ link }}",
                "If another time to call suits you better, or if you are facing financial difficulty, please "
                "reply to this email and let us know.",
                "Kind regards,\n{{ company_name }}",
            ],
        ),
        "third_party": (
            "Loan {{ loan_reference }} has been placed with a collection agency",
            [
                "Dear {{ borrower_name }},",
                "Loan {{ loan_reference }} is {{ days_past_due }} days overdue. The overdue amount is "
                "{{ amount_due }}, due since {{ due_date }}, and the total outstanding is {{ outstanding }}.",
                "As we have not been able to resolve this with you, the account has been placed with a "
                "collection agency that acts on our behalf. The agency may contact you about it.",
                "You can still pay directly at {{ link }}, or contact us to agree a repayment plan.",
                "Kind regards,\n{{ company_name }}",
            ],
        ),
        "litigation": (
            "Loan {{ loan_reference }} has been referred for legal review",
            [
                "Dear {{ borrower_name }},",
                "Loan {{ loan_reference }} has an overdue amount of {{ amount_due }}, due since {{ due_date }} "
                "({{ days_past_due }} days), and a total outstanding of {{ outstanding }}.",
                "The account has now been referred for legal review, which may lead to formal proceedings to "
                "recover the debt.",
                "It is still possible to resolve this without them. Please pay at {{ link }} or contact us to "
                "agree a repayment plan.",
                "Kind regards,\n{{ company_name }}",
            ],
        ),
    },
    "zh-hans": {
        "warning": (
            "借款{{ loan_reference }}还款提醒",
            [
                "尊敬的{{ borrower_name }}您好：",
                "您的借款（编号{{ loan_reference }}）应于{{ due_date }}还款{{ amount_due }}，截至目前我们尚未收到该笔款项。",
                "如您已还款，请忽略本邮件，感谢您的配合。如尚未还款，请您尽快通过以下链接还款：{{ link }}",
                "如您在还款方面遇到困难，欢迎随时与我们联系，我们愿意与您共同商讨解决方案。",
                "此致\n敬礼！\n{{ company_name }}",
            ],
        ),
        "reminder": (
            "借款{{ loan_reference }}已逾期{{ days_past_due }}天，请尽快还款",
            [
                "尊敬的{{ borrower_name }}您好：",
                "您的借款（编号{{ loan_reference }}）应还款{{ amount_due }}已逾期{{ days_past_due }}天"
                "（应还日期{{ due_date }}），目前借款待还总额为{{ outstanding }}。",
                "请您尽快通过以下链接归还逾期款项：{{ link }}",
                "如您暂时无法全额还款，请及时与我们联系，我们可以根据您的实际情况协商还款安排。",
                "此致\n敬礼！\n{{ company_name }}",
            ],
        ),
        "phone": (
            "关于借款{{ loan_reference }}的还款沟通",
            [
                "尊敬的{{ borrower_name }}您好：",
                "您的借款（编号{{ loan_reference }}）自{{ due_date }}起逾期，已逾期{{ days_past_due }}天，"
                "逾期金额{{ amount_due }}。",
                "我们的工作人员将致电与您沟通还款安排。您也可以随时通过以下链接还款：{{ link }}",
                "如您希望另约通话时间，或目前经济上遇到困难，请回复本邮件告知我们。",
                "此致\n敬礼！\n{{ company_name }}",
            ],
        ),
        "third_party": (
            "借款{{ loan_reference }}已委托第三方机构跟进",
            [
                "尊敬的{{ borrower_name }}您好：",
                "您的借款（编号{{ loan_reference }}）已逾期{{ days_past_due }}天，逾期金额{{ amount_due }}"
                "（应还日期{{ due_date }}），待还总额{{ outstanding }}。",
                "由于此前未能与您协商解决，该账户已委托合作的第三方机构代表我们跟进处理，相关机构可能会与您联系。",
                "您仍可直接还款，或与我们联系协商还款方案。还款链接：{{ link }}",
                "此致\n敬礼！\n{{ company_name }}",
            ],
        ),
        "litigation": (
            "借款{{ loan_reference }}已转交法务审核",
            [
                "尊敬的{{ borrower_name }}您好：",
                "您的借款（编号{{ loan_reference }}）逾期金额{{ amount_due }}（自{{ due_date }}起，"
                "已逾期{{ days_past_due }}天），待还总额{{ outstanding }}。",
                "该账户现已转交法务部门审核，后续可能依法通过正式程序处理。",
                "目前您仍可通过还款或与我们协商还款方案来解决此事。还款链接：{{ link }}",
                "此致\n敬礼！\n{{ company_name }}",
            ],
        ),
    },
}

HTML_LAYOUT = """<!DOCTYPE html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>{{{{ company_name }}}}</title></head>
<body style="margin:0;padding:0;background:#f4f5f7;">
<div style="max-width:600px;margin:0 auto;padding:24px;background:#ffffff;font-family:Arial,'PingFang SC','Microsoft YaHei',sans-serif;font-size:15px;line-height:1.6;color:#222222;">
<p style="margin:0 0 20px;font-size:18px;font-weight:bold;">{{{{ company_name }}}}</p>
{paragraphs}
<p style="margin:24px 0 0;padding-top:12px;border-top:1px solid #dddddd;font-size:12px;color:#666666;">{{{{ opt_out_line }}}}</p>
</div>
</body>
</html>"""

LINK_HTML = '<a href="{{ link }}" style="color:#1a5fb4;">{{ link }}</a>'


def email_parts(language, paragraphs):
    text = "\n\n".join([*paragraphs, "{{ opt_out_line }}"])
    html_paragraphs = "\n".join(
        '<p style="margin:0 0 14px;">{}</p>'.format(p.replace("{{ link }}", LINK_HTML).replace("\n", "<br>"))
        for p in paragraphs
    )
    return text, HTML_LAYOUT.format(lang=language, paragraphs=html_paragraphs)


def default_templates():
    """(name, stage code, channel, language, subject, body, html_body) for the 20 defaults."""
    for stage in STAGES:
        for language in ("en", "zh-hans"):
            yield (f"{stage}-sms-{language}", stage, "sms", language, "", SMS[language][stage], "")
            subject, paragraphs = EMAIL[language][stage]
            text, html = email_parts(language, paragraphs)
            yield (f"{stage}-email-{language}", stage, "email", language, subject, text, html)


def forward(apps, schema_editor):
    ForbiddenPhrase = apps.get_model("notifications", "ForbiddenPhrase")
    MessageTemplate = apps.get_model("notifications", "MessageTemplate")
    Stage = apps.get_model("cases", "Stage")

    for language, phrase, why in FORBIDDEN_PHRASES:
        ForbiddenPhrase.objects.get_or_create(phrase=phrase, language=language, defaults={"why": why})

    stages = {s.code: s for s in Stage.objects.filter(code__in=STAGES)}
    now = timezone.now()
    for name, code, channel, language, subject, body, html_body in default_templates():
        stage = stages.get(code)
        if stage is None:  # an admin removed the stage rule: nothing to write for
            continue
        taken = MessageTemplate.objects.filter(stage=stage, channel=channel, language=language, active=True)
        if MessageTemplate.objects.filter(name=name).exists() or taken.exists():
            continue
        MessageTemplate.objects.create(
            name=name,
            stage=stage,
            channel=channel,
            language=language,
            subject=subject,
            body=body,
            html_body=html_body,
            approved=True,
            approved_by=None,
            approved_at=now,
            active=True,
        )

    grant(
        apps,
        "notifications",
        {
            "admin": [
                "view_messagetemplate",
                "add_messagetemplate",
                "change_messagetemplate",
                "view_forbiddenphrase",
                "add_forbiddenphrase",
                "change_forbiddenphrase",
                "view_smsoptout",
                "add_smsoptout",
                "change_smsoptout",
                "view_outboundmessage",
                "view_inboundsms",
            ],
            "supervisor": ["view_outboundmessage", "view_messagetemplate"],
            "collector": ["view_messagetemplate"],
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0003_outbox_templates_optouts"),
        ("cases", "0007_beat_schedule"),
    ]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
