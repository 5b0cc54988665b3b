"""The compliance policy, applied at the moment a message would be sent (CONTRACT section 6).

It is checked at send time, not only when the message is queued, because a case can change
in between: the borrower may pay, dispute, opt out or ask us to stop. A message is either
sent now, deferred to the next time it is allowed (never dropped), or suppressed, and the
rule that decided is stored in the message's ``reason``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.db.models import Min, Q

from cases.models import CaseStatus, Contact, Hold, HoldReason

from .models import Channel, CompliancePolicy, MessageStatus, OutboundMessage, Reason, SmsOptOut

SEND, DEFER, SUPPRESS = "send", "defer", "suppress"
# Statuses that mean an SMS went (or is going) out, for the caps.
COUNTED_STATUSES = (MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED)
MANUAL_ACTION = "manual"


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str = ""
    not_before: dt.datetime | None = None

    @property
    def sends(self) -> bool:
        return self.action == SEND


def decide(message: OutboundMessage, *, now: dt.datetime, policy: CompliancePolicy | None = None) -> Decision:
    """What the policy says about sending ``message`` at ``now``.

    Suppressions come first (they are final), then deferrals. Caps apply to automated
    messages; a collector's manual send still respects the hours, holds and opt-outs.
    """
    policy = policy or CompliancePolicy.current()
    case = message.case
    borrower = message.borrower

    if case.status == CaseStatus.RESOLVED:
        return Decision(SUPPRESS, Reason.RESOLVED)
    if case.status == CaseStatus.CLOSED:
        return Decision(SUPPRESS, Reason.CASE_CLOSED)
    if not message.to:
        return Decision(SUPPRESS, Reason.NO_ADDRESS)
    if _addressed_to_third_party(message):
        return Decision(SUPPRESS, Reason.THIRD_PARTY)
    hold = _active_hold(case.pk, now)
    if hold is not None:
        if hold == HoldReason.CEASE_COMMUNICATION:
            return Decision(SUPPRESS, Reason.CEASE_COMMUNICATION)
        return Decision(SUPPRESS, f"{Reason.HOLD}:{hold}")
    if message.channel == Channel.SMS:
        if borrower.sms_opt_out or SmsOptOut.objects.filter(phone=message.to, opted_out=True).exists():
            return Decision(SUPPRESS, Reason.OPT_OUT)
        if not borrower.consent_sms:
            return Decision(SUPPRESS, Reason.NO_CONSENT)
    else:
        if borrower.email_opt_out:
            return Decision(SUPPRESS, Reason.OPT_OUT)
        if not borrower.consent_email:
            return Decision(SUPPRESS, Reason.NO_CONSENT)
    if message.template_id is None or not message.template.approved:
        return Decision(SUPPRESS, Reason.TEMPLATE_NOT_APPROVED)

    zone = _zone(borrower.timezone)
    opening = next_window_opening(now, zone=zone, start=policy.window_start, end=policy.window_end)
    if opening > now:
        return Decision(DEFER, Reason.QUIET_HOURS, opening)
    if message.channel == Channel.SMS and message.action != MANUAL_ACTION:
        cap = _sms_cap(message, now=now, zone=zone, policy=policy)
        if cap is not None:
            return cap
    return Decision(SEND)


def next_window_opening(now: dt.datetime, *, zone: dt.tzinfo, start: dt.time, end: dt.time) -> dt.datetime:
    """``now`` if it is inside the daily window in ``zone``, else the next opening."""
    local = now.astimezone(zone)
    if start <= local.time() < end:
        return now
    day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
    return _local(day, start, zone)


def _local(day: dt.date, at: dt.time, zone: dt.tzinfo) -> dt.datetime:
    # fold=0 and zoneinfo normalise a time skipped by a DST change to a real instant.
    return dt.datetime.combine(day, at, tzinfo=zone).astimezone(dt.UTC)


def _sms_cap(
    message: OutboundMessage, *, now: dt.datetime, zone: dt.tzinfo, policy: CompliancePolicy
) -> Decision | None:
    sent = (
        OutboundMessage.objects.filter(
            borrower_id=message.borrower_id, channel=Channel.SMS, status__in=COUNTED_STATUSES
        )
        .exclude(pk=message.pk)
        .exclude(action=MANUAL_ACTION)
    )
    local_today = now.astimezone(zone).date()
    day_start = _local(local_today, dt.time(0), zone)
    if policy.sms_per_day and sent.filter(claimed_at__gte=day_start).count() >= policy.sms_per_day:
        opening = _local(local_today + dt.timedelta(days=1), policy.window_start, zone)
        return Decision(DEFER, Reason.DAILY_SMS_CAP, opening)
    week_start = now - dt.timedelta(days=7)
    recent = sent.filter(claimed_at__gt=week_start)
    if policy.sms_per_week and recent.count() >= policy.sms_per_week:
        # Allowed again when the oldest of those drops out of the 7 days, in the window.
        oldest = recent.aggregate(first=Min("claimed_at"))["first"]
        free_at = oldest + dt.timedelta(days=7)
        opening = next_window_opening(free_at, zone=zone, start=policy.window_start, end=policy.window_end)
        return Decision(DEFER, Reason.WEEKLY_SMS_CAP, max(opening, free_at))
    return None


def _active_hold(case_id: int, now: dt.datetime) -> str | None:
    today = now.date()
    reasons = set(
        Hold.objects.filter(case_id=case_id, released_at__isnull=True, starts_at__lte=now)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=today))
        .values_list("reason", flat=True)
    )
    if not reasons:
        return None
    # A cease-communication request outranks any other hold in the stored reason.
    return HoldReason.CEASE_COMMUNICATION if HoldReason.CEASE_COMMUNICATION in reasons else min(reasons)


def _addressed_to_third_party(message: OutboundMessage) -> bool:
    """Automated messages go to the borrower only, never to a contact's number or address."""
    borrower = message.borrower
    own = borrower.phone if message.channel == Channel.SMS else borrower.email
    if message.to != own:
        return True
    field = "phone" if message.channel == Channel.SMS else "email"
    return Contact.objects.filter(borrower_id=borrower.pk, **{field: message.to}).exists()


def _zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("Asia/Shanghai")
