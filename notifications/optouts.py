"""SMS opt-out and opt-in (CONTRACT section 6): honoured at once, for every borrower with
the number, until the borrower opts back in."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from cases.models import Borrower, Case, CaseEvent, EventKind
from cases.models.cases import LIVE_STATUSES

from .models import MessageStatus, OutboundMessage, Reason, SmsOptOut

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "UNSUBSCRIBE", "END", "QUIT", "STOPALL", "REVOKE", "OPTOUT", "CANCEL", "退订", "TD"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})


def keyword_of(body: str) -> str:
    """The message's keyword as carriers read it: the whole trimmed text, case-insensitive."""
    return (body or "").strip().strip(".!\u3002\uff01").upper()


@transaction.atomic
def sms_opt_out_record(*, phone: str, source: str, keyword: str = "") -> bool:
    """Stop SMS to this number now: flag the borrowers, suppress their unsent SMS, note it on
    their live cases. Returns False when the number was already opted out (a repeat)."""
    now = timezone.now()
    record, created = SmsOptOut.objects.select_for_update().get_or_create(
        phone=phone, defaults={"opted_out": True, "source": source, "keyword": keyword, "changed_at": now}
    )
    if not created and record.opted_out:
        return False
    if not created:
        record.opted_out, record.source, record.keyword, record.changed_at = True, source, keyword, now
        record.save()
    borrower_ids = list(Borrower.objects.filter(phone=phone).values_list("pk", flat=True))
    Borrower.objects.filter(pk__in=borrower_ids).update(sms_opt_out=True, sms_opt_out_at=now, updated_at=now)
    OutboundMessage.objects.filter(
        borrower_id__in=borrower_ids, channel="sms", status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED]
    ).update(status=MessageStatus.SUPPRESSED, reason=Reason.OPT_OUT, updated_at=now)
    _note_on_cases(borrower_ids, {"sms_opt_out": True, "source": source, "keyword": keyword})
    return True


@transaction.atomic
def sms_opt_in_record(*, phone: str, keyword: str) -> bool:
    now = timezone.now()
    updated = SmsOptOut.objects.filter(phone=phone, opted_out=True).update(
        opted_out=False, source="keyword", keyword=keyword, changed_at=now
    )
    borrower_ids = list(Borrower.objects.filter(phone=phone, sms_opt_out=True).values_list("pk", flat=True))
    Borrower.objects.filter(pk__in=borrower_ids).update(sms_opt_out=False, sms_opt_out_at=None, updated_at=now)
    if updated or borrower_ids:
        _note_on_cases(borrower_ids, {"sms_opt_out": False, "source": "keyword", "keyword": keyword})
    return bool(updated or borrower_ids)


def _note_on_cases(borrower_ids: list[int], detail: dict) -> None:
    case_ids = Case.objects.filter(loan__borrower_id__in=borrower_ids, status__in=LIVE_STATUSES).values_list(
        "pk", flat=True
    )
    CaseEvent.objects.bulk_create(
        CaseEvent(case_id=case_id, kind=EventKind.MESSAGE, detail=detail) for case_id in case_ids
    )
