"""Working a case: what collectors and supervisors record (CONTRACT sections 4, 6 and 9).

Every function here is keyword-only, runs in one transaction, checks who may act before
anything else, and writes its case event in the same transaction as the change. Bad
input raises ``ValidationError({field: [message]})`` and writes nothing; a clash with the
stored state raises ``ConflictError`` (409); a user whose role may not act, or who may
not see the case (``cases_for_user``), gets ``PermissionDenied``.

Functions that change a case's state lock its row first (``SELECT ... FOR UPDATE``): two
promises made at once, or two calls logged at once against the call cap, are decided one
after the other, and the second sees what the first wrote.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from cases.exceptions import CallCapReached, ConflictError, PermissionDenied
from cases.models import (
    Case,
    CaseStatus,
    ContactAttempt,
    ContactChannel,
    ContactOutcome,
    EventKind,
    Hold,
    HoldReason,
    Note,
    PaymentPlan,
    PlanInstallment,
    PlanStatus,
    PromiseStatus,
    PromiseToPay,
)
from cases.models.borrowers import mask_identifier
from cases.models.cases import LIVE_STATUSES
from cases.models.work import CONNECTED_OUTCOMES
from cases.policy import case_policy
from cases.selectors import business_date, call_cap_reached, case_visible_to

from .audit import borrower_view_record
from .events import event_record

# Permissions (granted to the role groups by cases/migrations/0004_roles.py).
WORK_PERMISSION = "cases.add_contactattempt"  # collectors and supervisors work cases
PROMISE_PERMISSION = "cases.add_promisetopay"
PLAN_PROPOSE_PERMISSION = "cases.add_paymentplan"
PLAN_APPROVE_PERMISSION = "cases.change_paymentplan"  # supervisors
NOTE_PERMISSION = "cases.add_note"
HOLD_PERMISSION = "cases.add_hold"  # supervisors (and legal): any reason
HOLD_RELEASE_PERMISSION = "cases.change_hold"  # supervisors
REVEAL_PERMISSION = "cases.reveal_personal_data"  # supervisors and legal

# Holds the borrower raises on a call, which whoever works the case may record at once.
BORROWER_RAISED_HOLDS = frozenset({HoldReason.DISPUTE, HoldReason.CEASE_COMMUNICATION})
# A promise is for the near term; longer arrangements are payment plans.
PROMISE_MAX_DAYS_AHEAD = 30
PLAN_MAX_INSTALLMENTS = 24
PLAN_MAX_DAYS_AHEAD = 730
REVEAL_REASON_MIN_LENGTH = 5
NOTE_MAX_LENGTH = 5000
# Borrower fields that are shown masked and may be revealed with a reason.
REVEALABLE_FIELDS = ("phone", "national_id")
CENTS = Decimal("0.01")


# --- checks ----------------------------------------------------------------------------


def _require_role(user, permission: str, message: str) -> None:
    if user is None or not user.is_authenticated or not user.is_active:
        raise PermissionDenied(_("Log in to work on cases."))
    if not user.has_perm(permission):
        raise PermissionDenied(message)


def _lock_case(case_id: int, user) -> Case:
    """The case row, locked until the transaction ends, after checking the user may act on it.

    Visibility is checked after the lock so that a reassignment committed meanwhile counts.
    """
    case = Case.objects.select_for_update(of=("self",)).select_related("loan__borrower").get(pk=case_id)
    _require_visible(case, user)
    return case


def _require_visible(case: Case, user) -> None:
    if not case_visible_to(case_id=case.pk, user=user):
        raise PermissionDenied(_("Case %(case)s is not one of the cases you may work on.") % {"case": case.pk})


def _require_live(case: Case) -> None:
    if case.status not in LIVE_STATUSES:
        raise ConflictError(
            _("Case %(case)s is %(status)s: it can no longer be worked.")
            % {"case": case.pk, "status": case.get_status_display()}
        )


def _money(value: Any, field: str, errors: dict[str, list[str]]) -> Decimal | None:
    """A positive-or-zero amount with at most two decimals, else an error on ``field``."""
    try:
        if isinstance(value, bool | float):
            # Floats are not money: 0.1 + 0.2 != 0.3. Callers pass Decimal, str or int.
            raise TypeError(value)
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
        exact = amount.is_finite() and amount == amount.quantize(CENTS, rounding=ROUND_DOWN)
    except (InvalidOperation, TypeError, ValueError):
        errors.setdefault(field, []).append(_("Enter an amount such as 100.00."))
        return None
    if not exact:
        errors.setdefault(field, []).append(_("Enter an amount with at most two decimal places."))
        return None
    return amount


def _raise(errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)


def _is_date(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _when(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


# --- contacts --------------------------------------------------------------------------


# Channels a cease-communication hold closes (CONTRACT section 4); a letter stays allowed.
CEASED_CHANNELS = frozenset({ContactChannel.PHONE, ContactChannel.SMS, ContactChannel.EMAIL, ContactChannel.VISIT})


@transaction.atomic
def contact_log(
    *, case: Case, by, channel: str, outcome: str, note: str = "", now: dt.datetime | None = None
) -> ContactAttempt:
    """Record a contact attempt. Phone calls are held to the call caps (CONTRACT section 6).

    ``connected`` is set when the outcome means someone concerned answered
    (``cases.models.work.CONNECTED_OUTCOMES``: right_party_contact, promise_to_pay,
    third_party, refused, dispute, callback_requested). Beyond a cap the call is refused
    with ``CallCapReached``, which says when the next call is allowed.
    """
    _require_role(by, WORK_PERMISSION, _("Only collectors and supervisors may log contact attempts."))
    errors: dict[str, list[str]] = {}
    if channel not in ContactChannel.values:
        errors["channel"] = [_("Choose one of: %(choices)s.") % {"choices": ", ".join(ContactChannel.values)}]
    if outcome not in ContactOutcome.values:
        errors["outcome"] = [_("Choose one of: %(choices)s.") % {"choices": ", ".join(ContactOutcome.values)}]
    if not isinstance(note, str):
        errors["note"] = [_("Enter the note as text.")]
    _raise(errors)
    now = now or timezone.now()
    case = _lock_case(case.pk, by)
    _require_live(case)
    if (
        channel in CEASED_CHANNELS
        and _active_holds(case, business_date(now)).filter(reason=HoldReason.CEASE_COMMUNICATION).exists()
    ):
        # The borrower asked us to stop contacting them: a collector who logs a call, SMS,
        # e-mail or visit would be recording a breach. Letters (formal notices) stay allowed.
        raise ConflictError(
            _(
                "The borrower asked us to stop contacting them (a cease-communication hold is active): "
                "no calls, SMS, e-mails or visits until a supervisor releases the hold. Letters are still allowed."
            ),
            field="channel",
        )
    if channel == ContactChannel.PHONE:
        # The case row is locked, so two calls logged at once are counted one after the other.
        reached = call_cap_reached(case=case, now=now)
        if reached is not None:
            if reached.cap == "connected_per_day":
                message = ngettext(
                    "Call cap reached: at most %(limit)s connected call per case per day. "
                    "The next call is allowed at %(when)s.",
                    "Call cap reached: at most %(limit)s connected calls per case per day. "
                    "The next call is allowed at %(when)s.",
                    reached.limit,
                )
            else:
                message = ngettext(
                    "Call cap reached: at most %(limit)s call attempt per case in 7 days. "
                    "The next call is allowed at %(when)s.",
                    "Call cap reached: at most %(limit)s call attempts per case in 7 days. "
                    "The next call is allowed at %(when)s.",
                    reached.limit,
                )
            raise CallCapReached(
                message % {"limit": reached.limit, "when": _when(reached.next_allowed_at)},
                next_allowed_at=reached.next_allowed_at,
            )
    attempt = ContactAttempt.objects.create(
        case=case,
        channel=channel,
        outcome=outcome,
        connected=outcome in CONNECTED_OUTCOMES,
        note=note.strip(),
        attempted_at=now,
        collector=by,
    )
    case.last_contact_at = now
    case.save(update_fields=["last_contact_at", "updated_at"])
    event_record(
        case=case,
        kind=EventKind.CONTACT,
        actor=by,
        at=now,
        detail={"attempt": attempt.pk, "channel": channel, "outcome": outcome, "connected": attempt.connected},
    )
    return attempt


# --- promises --------------------------------------------------------------------------


@transaction.atomic
def promise_create(
    *, case: Case, by, amount: Decimal, due_date: dt.date, now: dt.datetime | None = None
) -> PromiseToPay:
    """A promise to pay ``amount`` by ``due_date``; the case pauses until then plus grace days.

    Rules: 0 < amount <= the case's outstanding amount; due_date from today (business date)
    to 30 days ahead; one pending promise per case (cancel it to make a new one). The
    sweep leaves a case alone while ``paused_until`` is on or after the business date, and
    settles the promise as kept or broken.
    """
    _require_role(by, PROMISE_PERMISSION, _("Only collectors and supervisors may record promises to pay."))
    now = now or timezone.now()
    today = business_date(now)
    errors: dict[str, list[str]] = {}
    amount = _money(amount, "amount", errors)
    if amount is not None and amount <= 0:
        errors["amount"] = [_("The promised amount must be more than zero.")]
    if not _is_date(due_date):
        errors["due_date"] = [_("Enter a date.")]
    elif not today <= due_date <= today + dt.timedelta(days=PROMISE_MAX_DAYS_AHEAD):
        errors["due_date"] = [
            _("The promised date must be between %(first)s and %(last)s.")
            % {"first": today, "last": today + dt.timedelta(days=PROMISE_MAX_DAYS_AHEAD)}
        ]
    _raise(errors)
    case = _lock_case(case.pk, by)
    _require_live(case)
    if amount > case.outstanding:
        raise ValidationError(
            {
                "amount": [
                    _("The promised amount cannot exceed the outstanding %(outstanding)s.")
                    % {"outstanding": case.outstanding}
                ]
            }
        )
    if PromiseToPay.objects.filter(case=case, status=PromiseStatus.PENDING).exists():
        raise ConflictError(
            _("This case already has a pending promise: cancel it before recording a new one."), field="due_date"
        )
    try:
        # The unique index is the last word should anything bypass the row lock.
        with transaction.atomic():
            promise = PromiseToPay.objects.create(
                case=case, amount=amount, due_date=due_date, created_at=now, created_by=by
            )
    except IntegrityError as exc:
        raise ConflictError(_("This case already has a pending promise.")) from exc
    case.paused_until = due_date + dt.timedelta(days=case_policy().promise_grace_days)
    case.save(update_fields=["paused_until", "updated_at"])
    promise.case = case
    event_record(
        case=case,
        kind=EventKind.PROMISE_MADE,
        actor=by,
        at=now,
        detail={
            "promise": promise.pk,
            "amount": str(amount),
            "due_date": due_date.isoformat(),
            "paused_until": case.paused_until.isoformat(),
        },
    )
    return promise


@transaction.atomic
def promise_cancel(*, promise: PromiseToPay, by, reason: str, now: dt.datetime | None = None) -> PromiseToPay:
    """Cancel a pending promise (e.g. the borrower withdrew it): the pause ends at once."""
    _require_role(by, PROMISE_PERMISSION, _("Only collectors and supervisors may cancel promises to pay."))
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError({"reason": [_("Say why the promise is cancelled.")]})
    now = now or timezone.now()
    case = _lock_case(promise.case_id, by)
    promise = PromiseToPay.objects.select_for_update().get(pk=promise.pk)
    if promise.status != PromiseStatus.PENDING:
        raise ConflictError(
            _("Only a pending promise can be cancelled; this one is %(status)s.")
            % {"status": promise.get_status_display()}
        )
    promise.status = PromiseStatus.CANCELLED
    promise.settled_at = now
    promise.save(update_fields=["status", "settled_at"])
    case.paused_until = None
    case.save(update_fields=["paused_until", "updated_at"])
    promise.case = case
    event_record(
        case=case,
        kind=EventKind.PROMISE_CANCELLED,
        actor=by,
        at=now,
        detail={"promise": promise.pk, "reason": reason.strip()},
    )
    return promise


# --- payment plans ---------------------------------------------------------------------


@transaction.atomic
def plan_propose(
    *,
    case: Case,
    by,
    installments: list[tuple[dt.date, Decimal]],
    waived_amount: Decimal = Decimal(0),
    note: str = "",
    now: dt.datetime | None = None,
) -> PaymentPlan:
    """Propose a payment plan (协商还款), optionally with a waiver (减免); a supervisor approves it.

    Rules: 1 to 24 installments with strictly increasing dates, the first not before today
    and the last within 730 days; each amount more than zero; the waiver zero or more; the
    plan's total plus the waiver no more than the case's outstanding amount; one proposed or
    active plan per case.
    """
    _require_role(by, PLAN_PROPOSE_PERMISSION, _("Only collectors and supervisors may propose payment plans."))
    now = now or timezone.now()
    today = business_date(now)
    errors: dict[str, list[str]] = {}
    waived = _money(waived_amount, "waived_amount", errors)
    if waived is not None and waived < 0:
        errors["waived_amount"] = [_("The waived amount cannot be negative.")]
    schedule: list[tuple[dt.date, Decimal]] = []
    if not isinstance(installments, list | tuple) or not installments:
        errors["installments"] = [_("Add at least one installment.")]
    elif len(installments) > PLAN_MAX_INSTALLMENTS:
        errors["installments"] = [_("A plan has at most %(count)s installments.") % {"count": PLAN_MAX_INSTALLMENTS}]
    else:
        problems: list[str] = []
        previous: dt.date | None = None
        for number, item in enumerate(installments, 1):
            try:
                due, raw_amount = item
            except (TypeError, ValueError):
                problems.append(_("Installment %(n)s: give a date and an amount.") % {"n": number})
                continue
            item_errors: dict[str, list[str]] = {}
            amount = _money(raw_amount, "amount", item_errors)
            if amount is not None and amount <= 0:
                item_errors["amount"] = [_("The amount must be more than zero.")]
            if not _is_date(due):
                item_errors["due_date"] = [_("Enter a date.")]
            elif due < today or due > today + dt.timedelta(days=PLAN_MAX_DAYS_AHEAD):
                item_errors["due_date"] = [
                    _("The date must be between %(first)s and %(last)s.")
                    % {"first": today, "last": today + dt.timedelta(days=PLAN_MAX_DAYS_AHEAD)}
                ]
            elif previous is not None and due <= previous:
                item_errors["due_date"] = [_("Each date must come after the one before.")]
            for messages in item_errors.values():
                problems.extend(_("Installment %(n)s: %(problem)s") % {"n": number, "problem": m} for m in messages)
            if not item_errors:
                schedule.append((due, amount))
                previous = due
        if problems:
            errors["installments"] = problems
    if not isinstance(note, str):
        errors["note"] = [_("Enter the note as text.")]
    _raise(errors)
    total = sum((amount for _due, amount in schedule), Decimal(0))
    case = _lock_case(case.pk, by)
    _require_live(case)
    if total + waived > case.outstanding:
        raise ValidationError(
            {
                "installments": [
                    _("The plan (%(total)s) plus the waiver (%(waived)s) exceeds the outstanding %(outstanding)s.")
                    % {"total": total, "waived": waived, "outstanding": case.outstanding}
                ]
            }
        )
    if PaymentPlan.objects.filter(case=case, status__in=(PlanStatus.PROPOSED, PlanStatus.ACTIVE)).exists():
        raise ConflictError(_("This case already has a proposed or active payment plan."))
    try:
        with transaction.atomic():
            plan = PaymentPlan.objects.create(
                case=case, total_amount=total, waived_amount=waived, created_at=now, created_by=by
            )
    except IntegrityError as exc:
        raise ConflictError(_("This case already has a proposed or active payment plan.")) from exc
    PlanInstallment.objects.bulk_create(
        PlanInstallment(plan=plan, sequence=number, due_date=due, amount=amount)
        for number, (due, amount) in enumerate(schedule, 1)
    )
    plan.case = case
    event_record(
        case=case,
        kind=EventKind.PLAN_PROPOSED,
        actor=by,
        at=now,
        detail={
            "plan": plan.pk,
            "total": str(total),
            "waived": str(waived),
            "installments": [{"due_date": d.isoformat(), "amount": str(a)} for d, a in schedule],
            "note": note.strip(),
        },
    )
    return plan


@transaction.atomic
def plan_approve(*, plan: PaymentPlan, by, now: dt.datetime | None = None) -> PaymentPlan:
    """A supervisor other than the proposer approves the plan: it becomes active, and the sweep
    does not escalate a case with an active plan while the plan is kept."""
    _require_role(by, PLAN_APPROVE_PERMISSION, _("Only supervisors may approve payment plans."))
    now = now or timezone.now()
    case = _lock_case(plan.case_id, by)
    plan = PaymentPlan.objects.select_for_update().get(pk=plan.pk)
    if plan.created_by_id is not None and plan.created_by_id == by.pk:
        raise PermissionDenied(_("Four eyes: another supervisor must approve a plan you proposed."))
    if plan.status != PlanStatus.PROPOSED:
        raise ConflictError(
            _("Only a proposed plan can be approved; this one is %(status)s.") % {"status": plan.get_status_display()}
        )
    _require_live(case)
    plan.status = PlanStatus.ACTIVE
    plan.approved_by = by
    plan.save(update_fields=["status", "approved_by"])
    plan.case = case
    event_record(
        case=case,
        kind=EventKind.PLAN_APPROVED,
        actor=by,
        at=now,
        detail={"plan": plan.pk, "proposed_by": plan.created_by_id, "total": str(plan.total_amount)},
    )
    return plan


# --- holds -----------------------------------------------------------------------------


def _active_holds(case: Case, today: dt.date):
    # The same "active" as the sweep's: not released and not past its end date.
    return Hold.objects.filter(case=case, released_at__isnull=True).filter(
        Q(ends_on__isnull=True) | Q(ends_on__gte=today)
    )


@transaction.atomic
def hold_place(
    *, case: Case, by, reason: str, until: dt.date | None = None, note: str = "", now: dt.datetime | None = None
) -> Hold:
    """Put the case on hold: no escalation and no automated messages until released or ``until``
    (the last day held; the sweep releases it the day after).

    Supervisors (and legal staff) may place any reason. Collectors may record only the holds
    a borrower raises, ``dispute`` and ``cease_communication``, on their own cases.
    """
    _require_role(by, NOTE_PERMISSION, _("You may not place holds."))
    if not by.has_perm(HOLD_PERMISSION) and not (reason in BORROWER_RAISED_HOLDS and by.has_perm(WORK_PERMISSION)):
        raise PermissionDenied(
            _("Collectors may record only dispute and cease-communication holds; a supervisor places the others.")
        )
    now = now or timezone.now()
    today = business_date(now)
    errors: dict[str, list[str]] = {}
    if reason not in HoldReason.values:
        errors["reason"] = [_("Choose one of: %(choices)s.") % {"choices": ", ".join(HoldReason.values)}]
    if until is not None and not _is_date(until):
        errors["until"] = [_("Enter a date.")]
    elif until is not None and until < today:
        errors["until"] = [_("The hold cannot end before today (%(today)s).") % {"today": today}]
    if not isinstance(note, str):
        errors["note"] = [_("Enter the note as text.")]
    _raise(errors)
    case = _lock_case(case.pk, by)
    _require_live(case)
    if _active_holds(case, today).filter(reason=reason).exists():
        raise ConflictError(_("The case already has an active %(reason)s hold.") % {"reason": HoldReason(reason).label})
    hold = Hold.objects.create(case=case, reason=reason, note=note.strip(), starts_at=now, ends_on=until, placed_by=by)
    if case.status in (CaseStatus.OPEN, CaseStatus.AWAITING_APPROVAL):
        # At once, rather than at the next sweep: the dispatcher and the queues read the status.
        case.status = CaseStatus.ON_HOLD
        case.save(update_fields=["status", "updated_at"])
    hold.case = case
    event_record(
        case=case,
        kind=EventKind.HOLD_PLACED,
        actor=by,
        at=now,
        detail={"hold": hold.pk, "reason": reason, "until": until.isoformat() if until else None, "note": hold.note},
    )
    return hold


@transaction.atomic
def hold_release(*, hold: Hold, by, note: str = "", now: dt.datetime | None = None) -> Hold:
    """A supervisor releases a hold; the case reopens when no other hold is active."""
    _require_role(by, HOLD_RELEASE_PERMISSION, _("Only supervisors may release holds."))
    if not isinstance(note, str):
        raise ValidationError({"note": [_("Enter the note as text.")]})
    now = now or timezone.now()
    case = _lock_case(hold.case_id, by)
    hold = Hold.objects.select_for_update().get(pk=hold.pk)
    if hold.released_at is not None:
        raise ConflictError(_("This hold was already released."))
    hold.released_at = now
    hold.released_by = by
    hold.save(update_fields=["released_at", "released_by"])
    if case.status == CaseStatus.ON_HOLD and not _active_holds(case, business_date(now)).exists():
        case.status = CaseStatus.AWAITING_APPROVAL if case.pending_stage_id else CaseStatus.OPEN
        case.save(update_fields=["status", "updated_at"])
    hold.case = case
    event_record(
        case=case,
        kind=EventKind.HOLD_RELEASED,
        actor=by,
        at=now,
        detail={"hold": hold.pk, "reason": hold.reason, "note": note.strip()},
    )
    return hold


# --- notes and personal data -----------------------------------------------------------


@transaction.atomic
def note_add(*, case: Case, by, text: str, now: dt.datetime | None = None) -> Note:
    """A free-text note on the case's timeline (also on resolved cases: the file stays readable)."""
    _require_role(by, NOTE_PERMISSION, _("You may not add notes to cases."))
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise ValidationError({"text": [_("Write the note.")]})
    if len(text) > NOTE_MAX_LENGTH:
        raise ValidationError({"text": [_("A note has at most %(count)s characters.") % {"count": NOTE_MAX_LENGTH}]})
    now = now or timezone.now()
    _require_visible(case, by)
    note = Note.objects.create(case=case, body=text, author=by, created_at=now)
    event_record(case=case, kind=EventKind.NOTE, actor=by, at=now, detail={"note": note.pk, "text": text[:200]})
    return note


@transaction.atomic
def borrower_reveal(*, case: Case, by, field: str, reason: str, now: dt.datetime | None = None) -> str:
    """The clear value of a masked borrower field, for users allowed to see it, with the reason
    written to the case's timeline (who looked at what, and why)."""
    _require_role(by, REVEAL_PERMISSION, _("You may not reveal borrowers' personal data."))
    errors: dict[str, list[str]] = {}
    if field not in REVEALABLE_FIELDS:
        errors["field"] = [_("Choose one of: %(choices)s.") % {"choices": ", ".join(REVEALABLE_FIELDS)}]
    reason = reason.strip() if isinstance(reason, str) else ""
    if len(reason) < REVEAL_REASON_MIN_LENGTH:
        errors["reason"] = [
            _("Say why you need it (at least %(count)s characters).") % {"count": REVEAL_REASON_MIN_LENGTH}
        ]
    _raise(errors)
    now = now or timezone.now()
    case = Case.objects.select_related("loan__borrower").get(pk=case.pk)
    _require_visible(case, by)
    event_record(case=case, kind=EventKind.PII_REVEALED, actor=by, at=now, detail={"field": field, "reason": reason})
    # The borrower's own access log too: audits ask "who saw this person's data", across cases.
    borrower_view_record(user=by, borrower=case.loan.borrower, what=field, reason=reason, at=now)
    return getattr(case.loan.borrower, field)


def mask_phone(value: str) -> str:
    """+8613812345678 -> +86 138****5678: the country code, the first three and last four digits."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return mask_identifier(value, keep_start=3)
    national = str(number.national_number)
    return f"+{number.country_code} {mask_identifier(national, keep_start=3, keep_end=4)}"


def mask_id(value: str) -> str:
    """110101199003074512 -> 11************4512: the first two and last four characters."""
    return mask_identifier(value, keep_start=2, keep_end=4)
