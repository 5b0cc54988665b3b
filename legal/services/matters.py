"""Legal matters: opened when a case enters litigation, then moved one step at a time.

approved -> letter_sent -> filed -> hearing_scheduled -> judgment -> enforcement -> closed,
and closed from any step (a settlement or a withdrawal). Each step is a service that checks
the role (legal staff or a supervisor), locks the matter, refuses any other move with a
message naming the current and the asked-for status, and writes an event on the case.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.exceptions import ConflictError
from cases.models import Case, CaseEvent
from cases.services.events import event_record
from legal import events
from legal.models import DocumentKind, Hearing, LegalDocument, LegalMatter, MatterStatus, Placement, RecallReason
from legal.roles import MANAGE_MATTERS, require_permission

from .placements import placements_recall

S = MatterStatus
# The one step forward from each status; CLOSED is reachable from every open status too.
NEXT_STATUS: dict[str, str] = {
    S.APPROVED: S.LETTER_SENT,
    S.LETTER_SENT: S.FILED,
    S.FILED: S.HEARING_SCHEDULED,
    S.HEARING_SCHEDULED: S.JUDGMENT,
    S.JUDGMENT: S.ENFORCEMENT,
    S.ENFORCEMENT: S.CLOSED,
}


def allowed_transitions(status: str) -> list[str]:
    if status == S.CLOSED:
        return []
    following = NEXT_STATUS[status]
    return [following] if following == S.CLOSED else [following, S.CLOSED]


@transaction.atomic
def legal_matters_open(
    *, case_ids: list[int], actor_id: int | None = None, now: dt.datetime | None = None
) -> list[int]:
    """Open a matter for each case of ``case_ids`` that has none in progress (the litigation
    stage handler); recall any agency placement, since the case now goes to court.
    Returns the ids of the new matters. Set-based: a fixed number of queries per batch."""
    now = now or timezone.now()
    open_matter = LegalMatter.objects.filter(case_id=OuterRef("pk")).exclude(status=S.CLOSED)
    cases = list(
        Case.objects.filter(pk__in=case_ids)
        .exclude(Exists(open_matter))
        .order_by("pk")
        .values_list("pk", "outstanding")
    )
    placements_recall(
        placements=Placement.objects.filter(case_id__in=case_ids),
        reason=RecallReason.LITIGATION,
        now=now,
    )
    if not cases:
        return []
    matters = LegalMatter.objects.bulk_create(
        [
            LegalMatter(
                case_id=case_id,
                amount_claimed=outstanding,
                opened_at=now,
                status_changed_at=now,
                opened_by_id=actor_id,
            )
            for case_id, outstanding in cases
        ]
    )
    CaseEvent.objects.bulk_create(
        [
            CaseEvent(
                case_id=m.case_id,
                kind=events.MATTER_OPENED,
                actor_id=actor_id,
                at=now,
                detail={"matter": m.pk, "status": S.APPROVED, "amount_claimed": str(m.amount_claimed)},
            )
            for m in matters
        ],
        batch_size=settings.COLLECTIONS_BATCH_SIZE,
    )
    return [m.pk for m in matters]


def _locked_matter(matter_id: int) -> LegalMatter:
    matter = LegalMatter.objects.select_for_update(of=("self",)).filter(pk=matter_id).first()
    if matter is None:
        raise LegalMatter.DoesNotExist(f"Legal matter {matter_id} does not exist.")
    return matter


def _check_move(matter: LegalMatter, to: str) -> None:
    if to not in allowed_transitions(matter.status):
        allowed = ", ".join(str(S(s).label) for s in allowed_transitions(matter.status)) or _("none")
        raise ConflictError(
            _("A matter that is “%(current)s” cannot move to “%(target)s”; allowed next: %(allowed)s.")
            % {"current": S(matter.status).label, "target": S(to).label, "allowed": allowed},
            field="status",
        )


def _move(matter: LegalMatter, *, to: str, user, now: dt.datetime, detail: dict[str, Any], fields: list[str]) -> None:
    previous = matter.status
    matter.status = to
    matter.status_changed_at = now
    matter.save(update_fields=["status", "status_changed_at", *fields])
    event_record(
        case=Case(pk=matter.case_id),
        kind=events.MATTER_STATUS,
        actor=user,
        at=now,
        detail={"matter": matter.pk, "from": previous, "to": to, **detail},
    )


def _required_text(errors: dict[str, str], name: str, value: str | None, label: str, max_length: int) -> str:
    value = (value or "").strip()
    if not value:
        errors[name] = _("Enter the %(field)s.") % {"field": label}
    elif len(value) > max_length:
        errors[name] = _("The %(field)s is longer than %(n)s characters.") % {"field": label, "n": max_length}
    return value


def _money(errors: dict[str, str], name: str, value, label: str, *, required: bool) -> Decimal | None:
    if value in (None, ""):
        if required:
            errors[name] = _("Enter the %(field)s.") % {"field": label}
        return None
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        errors[name] = _("The %(field)s must be an amount such as 1234.50.") % {"field": label}
        return None
    if amount < 0 or amount >= Decimal("1e12"):
        errors[name] = _("The %(field)s must be between 0 and 999,999,999,999.99.") % {"field": label}
        return None
    return amount


def _guard(user) -> None:
    require_permission(user, MANAGE_MATTERS, _("Only legal staff and supervisors may change legal matters."))


@transaction.atomic
def matter_mark_letter_sent(*, matter_id: int, user, now: dt.datetime | None = None) -> LegalMatter:
    """The demand letter went out to the borrower."""
    _guard(user)
    now = now or timezone.now()
    matter = _locked_matter(matter_id)
    _check_move(matter, S.LETTER_SENT)
    if not LegalDocument.objects.filter(matter=matter, kind=DocumentKind.DEMAND_LETTER).exists():
        raise ConflictError(_("Generate the demand letter before marking it sent."), field="status")
    _move(matter, to=S.LETTER_SENT, user=user, now=now, detail={}, fields=[])
    return matter


@transaction.atomic
def matter_file(
    *,
    matter_id: int,
    user,
    court: str,
    court_case_number: str,
    filed_on: dt.date | None,
    law_firm: str = "",
    lawyer: str = "",
    now: dt.datetime | None = None,
) -> LegalMatter:
    """The claim was filed with a court: court, its case number (案号) and the filing date."""
    _guard(user)
    now = now or timezone.now()
    errors: dict[str, str] = {}
    court = _required_text(errors, "court", court, _("court"), 200)
    court_case_number = _required_text(errors, "court_case_number", court_case_number, _("court case number"), 100)
    if filed_on is None:
        errors["filed_on"] = _("Enter the filing date.")
    elif filed_on > timezone.localdate(now):
        errors["filed_on"] = _("The filing date cannot be in the future.")
    if len(law_firm) > 200:
        errors["law_firm"] = _("The law firm is longer than 200 characters.")
    if len(lawyer) > 200:
        errors["lawyer"] = _("The lawyer is longer than 200 characters.")
    matter = _locked_matter(matter_id)
    _check_move(matter, S.FILED)
    if errors:
        raise ValidationError(errors)
    matter.court, matter.court_case_number, matter.filed_on = court, court_case_number, filed_on
    fields = ["court", "court_case_number", "filed_on"]
    if law_firm.strip():
        matter.law_firm = law_firm.strip()
        fields.append("law_firm")
    if lawyer.strip():
        matter.lawyer = lawyer.strip()
        fields.append("lawyer")
    _move(
        matter,
        to=S.FILED,
        user=user,
        now=now,
        detail={"court": court, "court_case_number": court_case_number, "filed_on": filed_on.isoformat()},
        fields=fields,
    )
    return matter


@transaction.atomic
def matter_schedule_hearing(
    *, matter_id: int, user, at: dt.datetime | None, location: str = "", note: str = "", now: dt.datetime | None = None
) -> Hearing:
    """A hearing date: the first one moves a filed matter to hearing_scheduled; later ones
    (an adjourned hearing) are added while the matter waits for judgment."""
    _guard(user)
    now = now or timezone.now()
    if at is None:
        raise ValidationError({"at": _("Enter the hearing date and time.")})
    if len(location) > 200:
        raise ValidationError({"location": _("The courtroom is longer than 200 characters.")})
    matter = _locked_matter(matter_id)
    if matter.status != S.HEARING_SCHEDULED:
        _check_move(matter, S.HEARING_SCHEDULED)
    if matter.filed_on and timezone.localdate(at) < matter.filed_on:
        raise ValidationError({"at": _("The hearing cannot be before the filing date.")})
    hearing = Hearing.objects.create(matter=matter, at=at, location=location.strip(), note=note.strip())
    detail = {"hearing_at": at.isoformat(), "location": hearing.location}
    if matter.status == S.HEARING_SCHEDULED:
        event_record(
            case=Case(pk=matter.case_id),
            kind=events.MATTER_STATUS,
            actor=user,
            at=now,
            detail={"matter": matter.pk, "from": matter.status, "to": matter.status, **detail},
        )
    else:
        _move(matter, to=S.HEARING_SCHEDULED, user=user, now=now, detail=detail, fields=[])
    return hearing


@transaction.atomic
def matter_record_judgment(
    *,
    matter_id: int,
    user,
    judgment_amount,
    judgment_on: dt.date | None,
    costs=None,
    now: dt.datetime | None = None,
) -> LegalMatter:
    _guard(user)
    now = now or timezone.now()
    errors: dict[str, str] = {}
    amount = _money(errors, "judgment_amount", judgment_amount, _("judgment amount"), required=True)
    costs_value = _money(errors, "costs", costs, _("costs"), required=False)
    if judgment_on is None:
        errors["judgment_on"] = _("Enter the judgment date.")
    elif judgment_on > timezone.localdate(now):
        errors["judgment_on"] = _("The judgment date cannot be in the future.")
    matter = _locked_matter(matter_id)
    _check_move(matter, S.JUDGMENT)
    if errors:
        raise ValidationError(errors)
    matter.judgment_amount, matter.judgment_on = amount, judgment_on
    fields = ["judgment_amount", "judgment_on"]
    if costs_value is not None:
        matter.costs = costs_value
        fields.append("costs")
    _move(
        matter,
        to=S.JUDGMENT,
        user=user,
        now=now,
        detail={"judgment_amount": str(amount), "judgment_on": judgment_on.isoformat(), "costs": str(matter.costs)},
        fields=fields,
    )
    return matter


@transaction.atomic
def matter_start_enforcement(*, matter_id: int, user, now: dt.datetime | None = None) -> LegalMatter:
    """Applied to the court for enforcement (强制执行) of the judgment."""
    _guard(user)
    now = now or timezone.now()
    matter = _locked_matter(matter_id)
    _check_move(matter, S.ENFORCEMENT)
    _move(matter, to=S.ENFORCEMENT, user=user, now=now, detail={}, fields=[])
    return matter


@transaction.atomic
def matter_close(*, matter_id: int, user, note: str, now: dt.datetime | None = None) -> LegalMatter:
    """Close the matter: after enforcement, or earlier on a settlement or withdrawal (say why)."""
    _guard(user)
    now = now or timezone.now()
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": _("Say why the matter is closed (e.g. paid in full, settled, withdrawn).")})
    matter = _locked_matter(matter_id)
    _check_move(matter, S.CLOSED)
    matter.closed_at = now
    matter.close_note = note
    _move(matter, to=S.CLOSED, user=user, now=now, detail={"note": note}, fields=["closed_at", "close_note"])
    return matter
