"""Message templates: the variables they may use, rendering for many cases at once, and
the checks an admin's text must pass before it can be saved.

Templates are written in Django template syntax by admins. They are rendered by a private
engine that knows only Django's built-in tags and filters and loads no files, so a
template cannot ``{% include %}`` another file or ``{% load %}`` a library; the checks
below narrow the tags further to ``if`` and ``comment``.

Every context value is a ready-formatted string: money with its currency, dates in the
borrower's language. A template therefore never formats anything itself, and the same
text reads correctly in an SMS, an email and the admin preview.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote

from django.conf import settings
from django.db.models import F, Min
from django.template import Context, Engine, Template, TemplateSyntaxError
from django.template.base import FilterExpression, Lexer, Parser, TokenType, Variable
from django.utils import timezone, translation
from django.utils.translation import gettext

from cases.models import Case, CaseStatus, Installment

from .models import Channel, ForbiddenPhrase, MessageTemplate

VARIABLES: dict[str, str] = {
    "borrower_name": "The borrower's name, e.g. 张伟.",
    "amount_due": "The overdue amount with its currency: ¥1,050.00 for CNY, otherwise the ISO code (USD 1,050.00).",
    "outstanding": "Everything still owed on the loan, formatted like amount_due.",
    "currency": "The loan's ISO 4217 currency code, e.g. CNY.",
    "due_date": "Due date of the oldest unpaid installment, in the borrower's language: 2026年3月1日 / 1 March 2026.",
    "days_past_due": "Days past due, a number, e.g. 12.",
    "loan_reference": "The loan's reference (its external id).",
    "link": "Where the borrower can pay: PUBLIC_BASE_URL/pay/<loan reference>/.",
    "opt_out_line": "How to opt out. SMS: 'Reply STOP to opt out.' / '回复TD退订'. Email: how to unsubscribe. "
    "Every SMS must contain it.",
    "company_name": "The lender's name (setting COLLECTIONS_COMPANY_NAME).",
}

DEFAULT_COMPANY_NAME = "Collections portal"
TEXT_FIELDS = ("subject", "body", "html_body")
# Tags a message may use. Anything else (include, load, now, url...) either reaches outside
# the message or formats what the context already formats.
ALLOWED_TAGS = ("if", "elif", "else", "endif", "comment", "endcomment")
_IF_OPERATORS = frozenset({"and", "or", "not", "in", "is", "==", "!=", "<", ">", "<=", ">="})

# No loaders and no libraries: only the built-in tags and filters exist here.
ENGINE = Engine(dirs=[], app_dirs=False, libraries={}, autoescape=True)

OPT_OUT_LINES = {
    (Channel.SMS, "en"): "Reply STOP to opt out.",
    (Channel.SMS, "zh-hans"): "回复TD退订",
    (Channel.EMAIL, "en"): "To stop receiving these emails, reply to this message with the word UNSUBSCRIBE.",
    (Channel.EMAIL, "zh-hans"): "如不希望继续收到此类邮件，请直接回复本邮件“退订”。",  # noqa: RUF001
}
# Symbols that are unambiguous; any other currency shows its ISO code (JPY shares ¥, so it does too).
CURRENCY_SYMBOLS = {"CNY": "¥", "HKD": "HK$", "USD": "US$", "EUR": "€", "GBP": "£"}
_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    html_body: str


# --- Formatting ---------------------------------------------------------------------------


def format_money(amount: Decimal, currency: str) -> str:
    """¥1,050.00 for CNY; USD and the like by symbol; anything else as 'CHF 1,050.00'."""
    number = f"{Decimal(amount):,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{currency} {number}"


def format_date(value: dt.date | None, language: str) -> str:
    # Spelled out by hand, not with the locale's date format: a message must read the same
    # whatever the worker's locale, and "03/01" means different days to different readers.
    if value is None:
        return ""
    if language == "zh-hans":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"


def opt_out_line(language: str, channel: str) -> str:
    return OPT_OUT_LINES.get((channel, language)) or OPT_OUT_LINES[(channel, "en")]


def payment_link(loan_reference: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/pay/{quote(loan_reference, safe='')}/"


def company_name() -> str:
    return getattr(settings, "COLLECTIONS_COMPANY_NAME", DEFAULT_COMPANY_NAME)


# --- Contexts -----------------------------------------------------------------------------


def build_contexts(case_ids: list[int], *, channel: str) -> dict[int, dict[str, str]]:
    """The variables of every case in ``case_ids``, in its borrower's language.

    Two queries whatever the number of cases: the cases with their loans and borrowers,
    and one grouped query for each loan's oldest unpaid due date (served by the partial
    index on unpaid installments). Amounts and days past due are the case's own, as the
    sweep last computed them, so a message says what the case page says.
    """
    if not case_ids:
        return {}
    cases = list(
        Case.objects.filter(pk__in=case_ids)
        .select_related("loan__borrower")
        .only(
            "days_past_due",
            "outstanding",
            "overdue_amount",
            "loan__external_id",
            "loan__currency",
            "loan__borrower__name",
            "loan__borrower__language",
        )
    )
    oldest_unpaid = dict(
        Installment.objects.filter(loan_id__in={case.loan_id for case in cases}, paid_amount__lt=F("amount"))
        .order_by()  # the model's ordering would join the GROUP BY
        .values("loan_id")
        .annotate(oldest=Min("due_date"))
        .values_list("loan_id", "oldest")
    )
    company = company_name()
    contexts: dict[int, dict[str, str]] = {}
    for case in cases:
        loan, borrower = case.loan, case.loan.borrower
        language = borrower.language
        contexts[case.pk] = {
            "borrower_name": borrower.name,
            "amount_due": format_money(case.overdue_amount, loan.currency),
            "outstanding": format_money(case.outstanding, loan.currency),
            "currency": loan.currency,
            "due_date": format_date(oldest_unpaid.get(loan.pk), language),
            "days_past_due": str(case.days_past_due),
            "loan_reference": loan.external_id,
            "link": payment_link(loan.external_id),
            "opt_out_line": opt_out_line(language, channel),
            "company_name": company,
        }
    return contexts


def sample_context(language: str, *, channel: str = Channel.SMS) -> dict[str, str]:
    """Made-up values for the admin preview when no open case in that language exists."""
    name = "张伟" if language == "zh-hans" else "Alex Chen"
    return {
        "borrower_name": name,
        "amount_due": format_money(Decimal("1050.00"), "CNY"),
        "outstanding": format_money(Decimal("3150.00"), "CNY"),
        "currency": "CNY",
        "due_date": format_date(dt.date(2026, 3, 1), language),
        "days_past_due": "12",
        "loan_reference": "L0001234",
        "link": payment_link("L0001234"),
        "opt_out_line": opt_out_line(language, channel),
        "company_name": company_name(),
    }


def preview_context(*, language: str, channel: str) -> tuple[dict[str, str], int | None]:
    """A context for previewing a template: the first open case whose borrower speaks
    ``language`` (one query, on the case status index), else the sample. Returns the
    context and the case id it came from (None for the sample)."""
    # Unordered on purpose: any open case will do, and without ORDER BY the first match on
    # the status index ends the scan.
    found = Case.objects.filter(status=CaseStatus.OPEN, loan__borrower__language=language).order_by()
    case_id = next(iter(found.values_list("pk", flat=True)[:1]), None)
    if case_id is not None:
        context = build_contexts([case_id], channel=channel).get(case_id)
        if context is not None:
            return context, case_id
    return sample_context(language, channel=channel), None


# --- Finding and rendering ----------------------------------------------------------------


def find_templates(stage_ids: set[int], channel: str) -> dict[tuple[int, str], MessageTemplate]:
    """(stage id, language) -> the active template, approved or not: the policy suppresses
    unapproved ones at send time with a reason, so a gap stays visible in the outbox."""
    templates = MessageTemplate.objects.filter(stage_id__in=stage_ids, channel=channel, active=True)
    return {(t.stage_id, t.language): t for t in templates}


@functools.lru_cache(maxsize=512)
def _compiled(pk: int | None, updated_at: dt.datetime | None, field: str, source: str) -> Template:
    # Keyed on (pk, updated_at) as saved, and on the text too: an unsaved edit (the admin
    # preview) has the same pk and updated_at as the stored row but other words.
    return Template(source, engine=ENGINE)


def _render_part(template: MessageTemplate, field: str, context: dict[str, str], *, autoescape: bool) -> str:
    source = getattr(template, field) or ""
    if not source.strip():
        return ""
    compiled = _compiled(template.pk, template.updated_at, field, source)
    return compiled.render(Context(context, autoescape=autoescape)).strip()


def render(template: MessageTemplate, context: dict[str, str]) -> Rendered:
    """Render a template's parts: text parts unescaped, the HTML part autoescaped."""
    with translation.override(template.language):
        subject = _render_part(template, "subject", context, autoescape=False)
        body = _render_part(template, "body", context, autoescape=False)
        html_body = _render_part(template, "html_body", context, autoescape=True)
    # A subject is one header line: a newline in it would make the mail library refuse it.
    return Rendered(subject=" ".join(subject.split()), body=body, html_body=html_body)


# --- Validation ---------------------------------------------------------------------------


@dataclass
class _Scan:
    variables: set[str]
    tags: set[str]
    # Variables printed outside any {% if %} and without filters: they always appear.
    always_printed: set[str]


def _names(expression: FilterExpression) -> set[str]:
    names = set()
    if isinstance(expression.var, Variable) and expression.var.lookups:
        names.add(expression.var.lookups[0])
    for _func, args in expression.filters:
        for is_variable, arg in args:
            if is_variable and isinstance(arg, Variable) and arg.lookups:
                names.add(arg.lookups[0])
    return names


def _scan(source: str) -> _Scan:
    """Variables (also filter arguments and {% if %} operands) and tags a template uses.
    The caller has compiled the source already, so it is known to parse."""
    tokens = Lexer(source).tokenize()
    parser = Parser(list(tokens), builtins=ENGINE.template_builtins)
    scan = _Scan(variables=set(), tags=set(), always_printed=set())
    depth, in_comment = 0, False
    for token in tokens:
        if token.token_type == TokenType.BLOCK:
            bits = token.split_contents()
            name = bits[0] if bits else ""
            if in_comment:
                in_comment = name != "endcomment"
                continue
            if name == "comment":
                in_comment = True
                continue
            scan.tags.add(name)
            depth += {"if": 1, "endif": -1}.get(name, 0)
            if name in ("if", "elif"):
                for bit in bits[1:]:
                    if bit not in _IF_OPERATORS:
                        scan.variables |= _names(parser.compile_filter(bit))
        elif token.token_type == TokenType.VAR and not in_comment:
            expression = parser.compile_filter(token.contents)
            names = _names(expression)
            scan.variables |= names
            if depth == 0 and not expression.filters and len(names) == 1:
                scan.always_printed |= names
    return scan


def _check_text(source: str, phrases: list[tuple[str, str]]) -> tuple[list[str], _Scan | None]:
    errors: list[str] = []
    folded = source.casefold()
    for phrase, why in phrases:
        if phrase.casefold() in folded:
            reason = why.rstrip(" .。") or gettext("this wording is not acceptable in a message to a borrower")
            errors.append(gettext('Forbidden wording "%(phrase)s": %(why)s.') % {"phrase": phrase, "why": reason})
    try:
        Template(source, engine=ENGINE)
    except TemplateSyntaxError as exc:
        errors.append(gettext("Template syntax error: %(error)s") % {"error": str(exc).strip()})
        return errors, None
    scan = _scan(source)
    unknown = sorted(scan.variables - VARIABLES.keys())
    if unknown:
        errors.append(
            gettext("Unknown variable(s): %(unknown)s. Allowed: %(allowed)s.")
            % {"unknown": ", ".join(unknown), "allowed": ", ".join(sorted(VARIABLES))}
        )
    refused = sorted(scan.tags - set(ALLOWED_TAGS))
    if refused:
        errors.append(
            gettext("Tag(s) not allowed in a message: %(tags)s. Allowed: %(allowed)s.")
            % {"tags": ", ".join(refused), "allowed": ", ".join(ALLOWED_TAGS)}
        )
    return errors, scan


def forbidden_phrases(language: str) -> list[tuple[str, str]]:
    """(phrase, why) of the active phrases checked in ``language``: its own and the
    language-less ones."""
    return list(ForbiddenPhrase.objects.filter(active=True, language__in=[language, ""]).values_list("phrase", "why"))


def validate_template(*, subject: str, body: str, html_body: str, language: str, channel: str) -> dict[str, list[str]]:
    """Field name -> what is wrong with it; empty when the template may be saved."""
    return check_template(
        subject=subject,
        body=body,
        html_body=html_body,
        channel=channel,
        phrases=forbidden_phrases(language),
    )


def check_template(
    *, subject: str, body: str, html_body: str, channel: str, phrases: list[tuple[str, str]]
) -> dict[str, list[str]]:
    """validate_template with the forbidden phrases given: checking many templates of one
    language (the admin's approve action) reads them once."""
    errors: dict[str, list[str]] = {}
    scans: dict[str, _Scan | None] = {}
    for field, source in (("subject", subject), ("body", body), ("html_body", html_body)):
        if source:
            field_errors, scans[field] = _check_text(source, phrases)
            if field_errors:
                errors[field] = field_errors
    if channel == Channel.SMS:
        body_scan = scans.get("body")
        if body and body_scan is not None and "opt_out_line" not in body_scan.always_printed:
            errors.setdefault("body", []).append(
                gettext(
                    "Every SMS carries the opt-out line: add {{ opt_out_line }} to the text, "
                    "outside any {% if %} and without filters."
                )
            )
        if subject:
            errors.setdefault("subject", []).append(gettext("An SMS has no subject: leave it empty."))
        if html_body:
            errors.setdefault("html_body", []).append(gettext("An SMS has no HTML part: leave it empty."))
    elif not subject.strip():
        errors.setdefault("subject", []).append(gettext("An email needs a subject."))
    return errors


# --- SMS length ---------------------------------------------------------------------------

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters of the extension table: each is sent as an escape plus the character.
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def _pack(costs: list[int], single: int, per_part: int) -> int:
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    # Concatenated parts never split an escape sequence or a surrogate pair, so a
    # two-unit character that does not fit starts the next part.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def sms_segments(text: str) -> tuple[str, int]:
    """("GSM-7" or "UCS-2", number of segments) for an SMS body; 0 segments for no text.

    GSM-7: 160 septets in one message, 153 per part when concatenated; extension-table
    characters (€ [ ] { } ...) take two. Any other character (Chinese, emoji) makes the
    whole message UCS-2: 70 code units, 67 per part; characters beyond the BMP take two.
    """
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
        return "GSM-7", _pack([2 if ch in _GSM_EXTENDED else 1 for ch in text], 160, 153)
    return "UCS-2", _pack([2 if ord(ch) > 0xFFFF else 1 for ch in text], 70, 67)


# --- Approval -----------------------------------------------------------------------------

APPROVED, WITHDRAWN, UNAPPROVED, UNCHANGED = "approved", "withdrawn", "unapproved", "unchanged"


def template_apply_approval(
    *, template: MessageTemplate, was_approved: bool, text_changed: bool, by, now: dt.datetime | None = None
) -> str:
    """Settle a template's approval before it is saved; return what happened.

    Approval covers the words that were reviewed: a save that changes an approved
    template's text withdraws the approval, whatever the checkbox says, and someone must
    approve the new text in a later save. Ticking "approved" records who and when.
    """
    if was_approved and text_changed:
        template.approved, template.approved_by, template.approved_at = False, None, None
        return WITHDRAWN
    if template.approved and not was_approved:
        template.approved_by, template.approved_at = by, now or timezone.now()
        return APPROVED
    if not template.approved:
        template.approved_by, template.approved_at = None, None
        return UNAPPROVED if was_approved else UNCHANGED
    return UNCHANGED


def templates_approve(*, template_ids: list[int], by, now: dt.datetime | None = None) -> tuple[int, dict[str, dict]]:
    """Approve the given templates that pass the checks. Returns (how many were approved,
    name -> errors of those refused). Already approved ones keep their first approval."""
    now = now or timezone.now()
    templates = list(MessageTemplate.objects.filter(pk__in=template_ids, approved=False))
    phrases = {language: forbidden_phrases(language) for language in {t.language for t in templates}}
    valid, refused = [], {}
    for template in templates:
        errors = check_template(
            subject=template.subject,
            body=template.body,
            html_body=template.html_body,
            channel=template.channel,
            phrases=phrases[template.language],
        )
        if errors:
            refused[template.name] = errors
        else:
            valid.append(template.pk)
    # Conditional on approved=False: approving twice at once keeps the first approver.
    count = MessageTemplate.objects.filter(pk__in=valid, approved=False).update(
        approved=True, approved_by=by, approved_at=now
    )
    return count, refused
