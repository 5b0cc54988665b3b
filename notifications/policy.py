"""The compliance policy, applied at the moment a message would be sent (CONTRACT section 6).

It is checked at send time, not only when the message is queued, because a case can change
in between: the borrower may pay, dispute, opt out or ask us to stop. A message is either
sent now, deferred to the next time it is allowed (never dropped), or suppressed, and the
rule that decided is stored in the message's ``reason``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field

from django.db.models import Q

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


@dataclass
class PolicyFacts:
    """What the policy needs to know from the database about a batch of messages, read with
    a fixed number of set-based queries however many messages there are (dispatch decides a
    whole chunk at once). ``sms_claims`` is updated as the batch is decided, so two messages
    to one borrower in the same batch count against the caps together."""

    # case id -> reasons of the holds in force
    holds: dict[int, set[str]] = field(default_factory=dict)
    # numbers with an SMS opt-out on record (STOP, 退订, Twilio 21610)
    opted_out_phones: set[str] = field(default_factory=set)
    # (borrower id, phone or email) of the borrower's contacts: third parties
    contact_addresses: set[tuple[int, str]] = field(default_factory=set)
    # borrower id -> claim times of automated SMS counted by the caps, last 7 days
    sms_claims: dict[int, list[dt.datetime]] = field(default_factory=dict)


def policy_facts(messages: list[OutboundMessage], *, now: dt.datetime) -> PolicyFacts:
    """The holds, opt-outs, contacts and recent SMS behind the decisions on ``messages``.

    At most four queries for the whole batch, each skipped when nothing in the batch needs
    it. Call it after locking the borrowers, so no other worker claims an SMS for them in
    between and the caps stay exact.
    """
    facts = PolicyFacts()
    if not messages:
        return facts
    today = now.date()
    case_ids = {m.case_id for m in messages}
    for case_id, reason in (
        Hold.objects.filter(case_id__in=case_ids, released_at__isnull=True, starts_at__lte=now)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=today))
        .values_list("case_id", "reason")
    ):
        facts.holds.setdefault(case_id, set()).add(reason)

    sms = [m for m in messages if m.channel == Channel.SMS and m.to]
    if sms:
        facts.opted_out_phones = set(
            SmsOptOut.objects.filter(phone__in={m.to for m in sms}, opted_out=True).values_list("phone", flat=True)
        )
    phones = {m.to for m in messages if m.channel == Channel.SMS and m.to}
    emails = {m.to for m in messages if m.channel != Channel.SMS and m.to}
    if phones or emails:
        for borrower_id, phone, email in Contact.objects.filter(
            Q(phone__in=phones) | Q(email__in=emails), borrower_id__in={m.borrower_id for m in messages}
        ).values_list("borrower_id", "phone", "email"):
            facts.contact_addresses.update({(borrower_id, phone), (borrower_id, email)})

    capped = [m for m in sms if m.action != MANUAL_ACTION]
    if capped:
        # The messages being decided are not counted against themselves (a retried message
        # keeps the claim time of its earlier attempt).
        for borrower_id, claimed_at in (
            OutboundMessage.objects.filter(
                borrower_id__in={m.borrower_id for m in capped},
                channel=Channel.SMS,
                status__in=COUNTED_STATUSES,
                claimed_at__gt=now - dt.timedelta(days=7),
            )
            .exclude(pk__in=[m.pk for m in capped if m.pk is not None])
            .exclude(action=MANUAL_ACTION)
            .values_list("borrower_id", "claimed_at")
        ):
            facts.sms_claims.setdefault(borrower_id, []).append(claimed_at)
    return facts


def decide(
    message: OutboundMessage,
    *,
    now: dt.datetime,
    policy: CompliancePolicy | None = None,
    facts: PolicyFacts | None = None,
) -> Decision:
    """What the policy says about sending ``message`` at ``now``.

    Suppressions come first (they are final), then deferrals. Caps apply to automated
    messages; a collector's manual send still respects the hours, holds and opt-outs.
    ``facts`` come from :func:`policy_facts` for a batch; without them they are read for
    this one message. A message the decision sends is added to ``facts.sms_claims``.
    """
    policy = policy or CompliancePolicy.current()
    if facts is None:
        facts = policy_facts([message], now=now)
    case = message.case
    borrower = message.borrower

    if case.status == CaseStatus.RESOLVED:
        return Decision(SUPPRESS, Reason.RESOLVED)
    if case.status == CaseStatus.CLOSED:
        return Decision(SUPPRESS, Reason.CASE_CLOSED)
    if not message.to:
        return Decision(SUPPRESS, Reason.NO_ADDRESS)
    if _addressed_to_third_party(message, facts):
        return Decision(SUPPRESS, Reason.THIRD_PARTY)
    holds = facts.holds.get(message.case_id)
    if holds:
        # A cease-communication request outranks any other hold in the stored reason.
        if HoldReason.CEASE_COMMUNICATION in holds:
            return Decision(SUPPRESS, Reason.CEASE_COMMUNICATION)
        return Decision(SUPPRESS, f"{Reason.HOLD}:{min(holds)}")
    if message.channel == Channel.SMS:
        if borrower.sms_opt_out or message.to in facts.opted_out_phones:
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
        claims = facts.sms_claims.setdefault(message.borrower_id, [])
        cap = _sms_cap(claims, now=now, zone=zone, policy=policy)
        if cap is not None:
            return cap
        claims.append(now)
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
    claims: list[dt.datetime], *, now: dt.datetime, zone: dt.tzinfo, policy: CompliancePolicy
) -> Decision | None:
    """Defer when the borrower's automated SMS of the local day or of the last 7 days (by
    claim time: what is being sent right now counts) reach the caps."""
    local_today = now.astimezone(zone).date()
    day_start = _local(local_today, dt.time(0), zone)
    if policy.sms_per_day and sum(1 for at in claims if at >= day_start) >= policy.sms_per_day:
        opening = _local(local_today + dt.timedelta(days=1), policy.window_start, zone)
        return Decision(DEFER, Reason.DAILY_SMS_CAP, opening)
    week_start = now - dt.timedelta(days=7)
    recent = [at for at in claims if at > week_start]
    if policy.sms_per_week and len(recent) >= policy.sms_per_week:
        # Allowed again when the oldest of those drops out of the 7 days, in the window.
        free_at = min(recent) + dt.timedelta(days=7)
        opening = next_window_opening(free_at, zone=zone, start=policy.window_start, end=policy.window_end)
        return Decision(DEFER, Reason.WEEKLY_SMS_CAP, max(opening, free_at))
    return None


def _addressed_to_third_party(message: OutboundMessage, facts: PolicyFacts) -> bool:
    """Automated messages go to the borrower only, never to a contact's number or address."""
    borrower = message.borrower
    own = borrower.phone if message.channel == Channel.SMS else borrower.email
    if message.to != own:
        return True
    return (borrower.pk, message.to) in facts.contact_addresses


def _zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("Asia/Shanghai")
