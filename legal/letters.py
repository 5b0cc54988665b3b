"""Demand letters (律师函) as PDF: an HTML template per language, rendered with WeasyPrint.

The letter is in the borrower's language (zh-hans or en) and set in Noto CJK (Debian's
fonts-noto-cjk, installed by scripts/ensure_pdf_deps.sh), so Chinese names print as
text, not boxes, and can be read back with pdftotext. Each letter is stored in private
storage with its SHA-256, which lets anyone prove later that a copy is unaltered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone, translation

from cases.models import CaseEvent, Installment, Language
from legal import events
from legal.models import DocumentKind, LegalDocument, LegalMatter
from legal.storage import private_legal_storage

# The borrower has this many days from the letter's date to pay before the claim is filed.
PAYMENT_DEADLINE_DAYS = 15
LETTER_LANGUAGES = (Language.ZH_HANS, Language.EN)


@dataclass(frozen=True)
class InstallmentRow:
    sequence: int
    due_date: dt.date
    amount: Decimal
    paid_amount: Decimal
    remaining: Decimal


def _letter_language(language: str) -> str:
    return language if language in LETTER_LANGUAGES else Language.ZH_HANS


def _contexts(matters: list[LegalMatter], issued_on: dt.date) -> dict[int, dict]:
    """Everything each letter shows, for all the matters in two queries (the matters with
    their case, loan and borrower, then every installment of those loans)."""
    loan_ids = [m.case.loan_id for m in matters]
    installments: dict[int, list[InstallmentRow]] = defaultdict(list)
    for i in Installment.objects.filter(loan_id__in=loan_ids).order_by("loan_id", "sequence"):
        installments[i.loan_id].append(InstallmentRow(i.sequence, i.due_date, i.amount, i.paid_amount, i.remaining))
    contexts = {}
    for matter in matters:
        case, loan = matter.case, matter.case.loan
        rows = installments[loan.pk]
        contexts[matter.pk] = {
            "matter": matter,
            "case": case,
            "loan": loan,
            "borrower": loan.borrower,
            "installments": rows,
            "total_due": sum((r.amount for r in rows), Decimal("0.00")),
            "total_paid": sum((r.paid_amount for r in rows), Decimal("0.00")),
            "outstanding": case.outstanding,
            "overdue_amount": case.overdue_amount,
            "days_past_due": case.days_past_due,
            "issued_on": issued_on,
            "deadline": issued_on + dt.timedelta(days=PAYMENT_DEADLINE_DAYS),
            "law_firm": matter.law_firm,
            "lawyer": matter.lawyer,
        }
    return contexts


def demand_letter_html(context: dict, language: str) -> str:
    language = _letter_language(language)
    with translation.override(language):
        return render_to_string(f"legal/letters/demand_letter_{language}.html", context)


def html_to_pdf(html: str) -> bytes:
    # Imported here: WeasyPrint loads Pango through cffi, which only the letter paths need.
    from weasyprint import HTML

    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf()


@transaction.atomic
def demand_letters_generate(
    *, matter_ids: list[int], actor_id: int | None = None, now: dt.datetime | None = None
) -> list[LegalDocument]:
    """Generate the demand letter of each matter of ``matter_ids`` that has none yet; store
    the PDFs and write a ``demand_letter`` event per case. Safe to run twice: a matter with a
    letter is skipped (and a unique constraint stops a concurrent second letter)."""
    now = now or timezone.now()
    has_letter = LegalDocument.objects.filter(matter_id=OuterRef("pk"), kind=DocumentKind.DEMAND_LETTER)
    matters = list(
        LegalMatter.objects.filter(pk__in=matter_ids)
        .exclude(Exists(has_letter))
        .select_related("case__loan__borrower")
        .order_by("pk")
    )
    if not matters:
        return []
    issued_on = timezone.localdate(now)
    contexts = _contexts(matters, issued_on)
    storage = private_legal_storage()
    documents = []
    for matter in matters:
        # One PDF per matter is the work itself; no query happens in this loop.
        language = _letter_language(matter.case.loan.borrower.language)
        pdf = html_to_pdf(demand_letter_html(contexts[matter.pk], language))
        name = storage.save(f"matters/{matter.pk}/demand-letter-{issued_on:%Y%m%d}-{language}.pdf", ContentFile(pdf))
        documents.append(
            LegalDocument(
                matter=matter,
                kind=DocumentKind.DEMAND_LETTER,
                title=f"律师函 / Demand letter {issued_on:%Y-%m-%d}",
                file=name,
                sha256=hashlib.sha256(pdf).hexdigest(),
                language=language,
                created_at=now,
                created_by_id=actor_id,
            )
        )
    # A rolled-back transaction leaves these files behind unreferenced; they are harmless
    # (private, never listed) and a later run writes new names beside them.
    LegalDocument.objects.bulk_create(documents)
    CaseEvent.objects.bulk_create(
        [
            CaseEvent(
                case_id=d.matter.case_id,
                kind=events.DEMAND_LETTER,
                actor_id=actor_id,
                at=now,
                detail={"matter": d.matter_id, "document": d.pk, "sha256": d.sha256, "language": d.language},
            )
            for d in documents
        ]
    )
    return documents
