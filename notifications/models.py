"""Notifications: the compliance policy (CONTRACT section 6), message templates, the
outbox (one row per message) and SMS opt-outs."""

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CompliancePolicy(models.Model):
    """A single row (pk 1) holding the limits; edited in Django admin."""

    window_start = models.TimeField(
        _("messages from"),
        default=dt.time(8, 0),
        help_text=_("In the borrower's own time zone."),
    )
    window_end = models.TimeField(_("messages until"), default=dt.time(21, 0))
    sms_per_day = models.PositiveSmallIntegerField(_("automated SMS per borrower per day"), default=1)
    sms_per_week = models.PositiveSmallIntegerField(_("automated SMS per borrower per 7 days"), default=3)
    call_attempts_per_week = models.PositiveSmallIntegerField(_("call attempts per case per 7 days"), default=7)
    connected_calls_per_day = models.PositiveSmallIntegerField(_("connected calls per case per day"), default=3)
    promise_grace_days = models.PositiveSmallIntegerField(
        _("promise grace days"),
        default=1,
        help_text=_("Days after a promised date before the promise counts as broken."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("compliance policy")
        verbose_name_plural = _("compliance policy")
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="compliance_policy_single_row"),
            models.CheckConstraint(
                condition=Q(window_start__lt=models.F("window_end")),
                name="compliance_window_order",
            ),
        ]

    def __str__(self) -> str:
        return str(_("Compliance policy"))

    def clean(self) -> None:
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise ValidationError({"window_end": _("The window must end after it starts.")})
        if self.sms_per_week < self.sms_per_day:
            raise ValidationError({"sms_per_week": _("The 7-day cap cannot be below the daily cap.")})

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def current(cls) -> "CompliancePolicy":
        policy, _created = cls.objects.get_or_create(pk=1)
        return policy


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    DEFERRED = "deferred", _("Deferred")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    UNDELIVERED = "undelivered", _("Undelivered")
    FAILED = "failed", _("Failed")
    SUPPRESSED = "suppressed", _("Suppressed")
    NEEDS_REVIEW = "needs_review", _("Needs review")


# Statuses a message may still leave by being sent; the others are settled or in flight.
PENDING_STATUSES = (MessageStatus.QUEUED, MessageStatus.DEFERRED)
# How far along a message is: provider callbacks only ever move a message forward.
STATUS_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.DEFERRED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.NEEDS_REVIEW: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.SUPPRESSED: 3,
}


class Reason(models.TextChoices):
    """Why a message was deferred, suppressed or failed: the rule that caused it."""

    QUIET_HOURS = "quiet_hours", _("Outside the permitted hours in the borrower's time zone")
    DAILY_SMS_CAP = "daily_sms_cap", _("Daily SMS cap reached")
    WEEKLY_SMS_CAP = "weekly_sms_cap", _("7-day SMS cap reached")
    HOLD = "hold", _("The case is on hold")
    CEASE_COMMUNICATION = "cease_communication", _("The borrower asked us to stop contacting them")
    OPT_OUT = "opt_out", _("The borrower opted out of this channel")
    NO_CONSENT = "no_consent", _("No consent to this channel")
    TEMPLATE_NOT_APPROVED = "template_not_approved", _("The template is not approved")
    THIRD_PARTY = "third_party", _("Third parties never receive automated messages")
    RESOLVED = "resolved", _("The case was resolved")
    CASE_CLOSED = "case_closed", _("The case is closed")
    NO_ADDRESS = "no_address", _("No phone number or email address")
    PROVIDER_ERROR = "provider_error", _("The provider refused the message")
    RETRIES_EXHAUSTED = "retries_exhausted", _("Temporary failures persisted; retries exhausted")
    UNKNOWN_OUTCOME = "unknown_outcome", _("Sending was interrupted and the outcome is unknown")


class MessageTemplate(models.Model):
    """A message in Django template syntax for one stage, channel and language.

    Only approved templates are sent. The text may use the variables documented in
    ``notifications.templating.VARIABLES``; the admin refuses unknown ones and forbidden
    wording.
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    stage = models.ForeignKey(
        "cases.Stage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="message_templates",
        verbose_name=_("stage"),
        help_text=_("Empty: a template collectors may send by hand from a case."),
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    language = models.CharField(_("language"), max_length=10, choices=[("en", "English"), ("zh-hans", "简体中文")])
    subject = models.CharField(_("subject (email)"), max_length=200, blank=True)
    body = models.TextField(_("text"))
    html_body = models.TextField(_("HTML (email)"), blank=True)
    approved = models.BooleanField(_("approved"), default=False)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["stage__order", "channel", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["stage", "channel", "language"],
                condition=Q(active=True, stage__isnull=False),
                name="template_one_active_per_stage_channel_language",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ForbiddenPhrase(models.Model):
    """Wording no template may use: threats, insults, mentions of family or employer."""

    phrase = models.CharField(_("phrase"), max_length=100)
    language = models.CharField(
        _("language"),
        max_length=10,
        blank=True,
        choices=[("en", "English"), ("zh-hans", "简体中文")],
        help_text=_("Empty: checked in every language."),
    )
    why = models.CharField(_("why"), max_length=200, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("forbidden phrase")
        verbose_name_plural = _("forbidden phrases")
        ordering = ["language", "phrase"]
        constraints = [models.UniqueConstraint(fields=["phrase", "language"], name="forbidden_phrase_unique")]

    def __str__(self) -> str:
        return self.phrase


class OutboundMessage(models.Model):
    """The outbox: one row per message, written in the transaction that decided to send it.

    The idempotency key (case, stage entry, action, repeat number) makes a second row for
    the same message impossible; dispatch claims a row with a conditional UPDATE before
    sending, so a message is never sent twice.
    """

    # No index of their own: outbox_case_idx and outbox_caps_idx start with these columns.
    # Every index is written on each status change, twice per message sent.
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="outbound_messages", db_index=False)
    borrower = models.ForeignKey(
        "cases.Borrower", on_delete=models.PROTECT, related_name="outbound_messages", db_index=False
    )
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    to = models.CharField(_("to"), max_length=254)
    language = models.CharField(_("language"), max_length=10)
    template = models.ForeignKey(MessageTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    stage = models.ForeignKey("cases.Stage", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(_("action"), max_length=32)
    repeat_number = models.PositiveSmallIntegerField(_("repeat"), default=0)
    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("body"))
    html_body = models.TextField(_("HTML body"), blank=True)
    status = models.CharField(_("status"), max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    reason = models.CharField(_("reason"), max_length=64, blank=True)
    scheduled_for = models.DateTimeField(_("scheduled for"), default=timezone.now)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    provider_id = models.CharField(_("provider id"), max_length=64, blank=True)
    error_code = models.CharField(_("error code"), max_length=16, blank=True)
    error_message = models.TextField(_("error"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("outbox")
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["scheduled_for"],
                condition=Q(status__in=["queued", "deferred"]),
                name="outbox_due_idx",
            ),
            models.Index(fields=["status", "claimed_at"], name="outbox_status_claimed_idx"),
            # The SMS caps count what was sent to a borrower recently.
            models.Index(fields=["borrower", "channel", "sent_at"], name="outbox_caps_idx"),
            models.Index(fields=["provider_id"], condition=~Q(provider_id=""), name="outbox_provider_idx"),
            models.Index(fields=["case", "created_at"], name="outbox_case_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.pk} {self.status}"


class SmsOptOut(models.Model):
    """A phone number that asked us to stop (STOP, 退订, TD...) or that Twilio reports as
    unsubscribed (error 21610). Honoured for every borrower with that number until START."""

    phone = models.CharField(_("phone"), max_length=20, unique=True)
    opted_out = models.BooleanField(_("opted out"), default=True)
    source = models.CharField(_("source"), max_length=32)
    keyword = models.CharField(_("keyword"), max_length=32, blank=True)
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now)

    class Meta:
        verbose_name = _("SMS opt-out")
        verbose_name_plural = _("SMS opt-outs")

    def __str__(self) -> str:
        return f"{self.phone} {'out' if self.opted_out else 'in'}"


class InboundSms(models.Model):
    provider_id = models.CharField(_("provider id"), max_length=64, unique=True)
    from_number = models.CharField(_("from"), max_length=20)
    to_number = models.CharField(_("to"), max_length=20, blank=True)
    body = models.TextField(_("body"), blank=True)
    action = models.CharField(_("action"), max_length=16, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        verbose_name = _("inbound SMS")
        verbose_name_plural = _("inbound SMS")

    def __str__(self) -> str:
        return f"{self.from_number}: {self.body[:30]}"


class DeliveryReceipt(models.Model):
    """Every status callback Twilio sent, kept as received (signature already checked).

    A callback can arrive before the worker has stored the message's provider id; the
    receipt waits here and is applied as soon as the id is known. Repeats are harmless:
    a status only ever moves a message forward.
    """

    provider_id = models.CharField(_("provider id"), max_length=64, db_index=True)
    status = models.CharField(_("status"), max_length=16)
    error_code = models.CharField(_("error code"), max_length=16, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    applied = models.BooleanField(_("applied"), default=False)

    class Meta:
        verbose_name = _("delivery receipt")
        verbose_name_plural = _("delivery receipts")
        indexes = [
            models.Index(fields=["received_at"], condition=Q(applied=False), name="receipt_unapplied_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.status}"
