"""What collectors record while working a case: promises, plans, contact attempts, notes."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .fields import MoneyField


class PromiseStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    KEPT = "kept", _("Kept")
    BROKEN = "broken", _("Broken")
    CANCELLED = "cancelled", _("Cancelled")


class PromiseToPay(models.Model):
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="promises")
    amount = MoneyField(_("amount"))
    due_date = models.DateField(_("promised by"))
    status = models.CharField(
        _("status"),
        max_length=12,
        choices=PromiseStatus.choices,
        default=PromiseStatus.PENDING,
    )
    created_at = models.DateTimeField(_("made at"), default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("promise to pay")
        verbose_name_plural = _("promises to pay")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="promise_amount_positive"),
            # At most one pending promise per case: a new promise replaces the old one.
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(status="pending"),
                name="promise_one_pending_per_case",
            ),
        ]
        indexes = [models.Index(fields=["status", "due_date"])]

    def __str__(self) -> str:
        return f"{self.amount} by {self.due_date}"


class PlanStatus(models.TextChoices):
    PROPOSED = "proposed", _("Proposed")
    ACTIVE = "active", _("Active")
    KEPT = "kept", _("Kept")
    BROKEN = "broken", _("Broken")
    CANCELLED = "cancelled", _("Cancelled")


class PaymentPlan(models.Model):
    """A negotiated repayment schedule (协商还款) that pauses escalation while it is kept."""

    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="payment_plans")
    status = models.CharField(
        _("status"),
        max_length=12,
        choices=PlanStatus.choices,
        default=PlanStatus.PROPOSED,
    )
    total_amount = MoneyField(_("total amount"))
    # A waiver (减免) agreed as part of the plan, if any.
    waived_amount = MoneyField(_("waived amount"), default=0)
    created_at = models.DateTimeField(_("proposed at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment plan")
        verbose_name_plural = _("payment plans")
        constraints = [
            models.CheckConstraint(condition=Q(total_amount__gt=0), name="plan_total_positive"),
            models.CheckConstraint(condition=Q(waived_amount__gte=0), name="plan_waived_non_negative"),
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(status__in=["proposed", "active"]),
                name="plan_one_live_per_case",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()} {self.total_amount}"


class PlanInstallment(models.Model):
    plan = models.ForeignKey(PaymentPlan, on_delete=models.CASCADE, related_name="installments")
    sequence = models.PositiveSmallIntegerField(_("number"))
    due_date = models.DateField(_("due date"))
    amount = MoneyField(_("amount"))
    paid_amount = MoneyField(_("paid amount"), default=0)

    class Meta:
        verbose_name = _("plan installment")
        verbose_name_plural = _("plan installments")
        ordering = ["plan", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "sequence"], name="plan_installment_unique_sequence"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="plan_installment_amount_positive"),
            models.CheckConstraint(
                condition=Q(paid_amount__gte=0),
                name="plan_installment_paid_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(paid_amount__lte=F("amount")),
                name="plan_installment_not_overpaid",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.due_date} {self.amount}"


class ContactChannel(models.TextChoices):
    PHONE = "phone", _("Phone call")
    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")
    VISIT = "visit", _("Visit")
    LETTER = "letter", _("Letter")


class ContactOutcome(models.TextChoices):
    RIGHT_PARTY = "right_party_contact", _("Right-party contact")
    PROMISE = "promise_to_pay", _("Promise to pay")
    THIRD_PARTY = "third_party", _("Spoke to a third party")
    NO_ANSWER = "no_answer", _("No answer")
    BUSY = "busy", _("Busy")
    VOICEMAIL = "voicemail", _("Voicemail")
    WRONG_NUMBER = "wrong_number", _("Wrong number")
    REFUSED = "refused", _("Refused to pay")
    DISPUTE = "dispute", _("Dispute raised")
    CALLBACK = "callback_requested", _("Callback requested")


# Outcomes in which someone answered about the debt: these count against the daily
# connected-call cap. A wrong number reached nobody concerned: an attempt, not a connection.
CONNECTED_OUTCOMES = frozenset(
    {
        ContactOutcome.RIGHT_PARTY,
        ContactOutcome.PROMISE,
        ContactOutcome.THIRD_PARTY,
        ContactOutcome.REFUSED,
        ContactOutcome.DISPUTE,
        ContactOutcome.CALLBACK,
    }
)


class ContactAttempt(models.Model):
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="contact_attempts")
    channel = models.CharField(_("channel"), max_length=12, choices=ContactChannel.choices)
    outcome = models.CharField(_("outcome"), max_length=24, choices=ContactOutcome.choices)
    connected = models.BooleanField(_("connected"), default=False)
    note = models.TextField(_("note"), blank=True)
    attempted_at = models.DateTimeField(_("attempted at"), default=timezone.now)
    collector = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)

    class Meta:
        verbose_name = _("contact attempt")
        verbose_name_plural = _("contact attempts")
        indexes = [
            models.Index(fields=["case", "attempted_at"]),
            models.Index(fields=["collector", "attempted_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.outcome} {self.attempted_at:%Y-%m-%d %H:%M}"


class Note(models.Model):
    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="notes")
    body = models.TextField(_("note"))
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("note")
        verbose_name_plural = _("notes")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.body[:50]
