"""Third-party collection agencies (第三方机构), their users and the cases placed with them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases.models.fields import MoneyField


class Agency(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    contact_name = models.CharField(_("contact person"), max_length=200, blank=True)
    contact_email = models.EmailField(_("contact email"), blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=32, blank=True)
    commission_percent = models.DecimalField(_("commission %"), max_digits=5, decimal_places=2, default=0)
    capacity = models.PositiveIntegerField(_("capacity"), default=1000, help_text=_("Most open placements at once."))
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("agency")
        verbose_name_plural = _("agencies")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(commission_percent__gte=0) & Q(commission_percent__lte=100),
                name="agency_commission_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AgencyMember(models.Model):
    """Ties a user of the `agency` group to the one agency they work for."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="agency_membership",
        verbose_name=_("user"),
    )
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="members", verbose_name=_("agency"))

    class Meta:
        verbose_name = _("agency member")
        verbose_name_plural = _("agency members")

    def __str__(self) -> str:
        return f"{self.user} @ {self.agency}"


class RecallReason(models.TextChoices):
    MANUAL = "manual", _("Recalled by hand")
    NO_RECOVERY = "no_recovery", _("No recovery within the recall period")
    LITIGATION = "litigation", _("Case entered litigation")
    RESOLVED = "resolved", _("Case resolved")


class Placement(models.Model):
    """A case handed to a third-party agency (第三方机构), from placement until recall.

    ``amount_recovered`` and ``commission_due`` are a stored copy of what the payments on the
    loan while placed add up to; legal.services.placements_refresh_recovery recomputes them
    set-based (the recall task and every recall do).
    """

    case = models.ForeignKey("cases.Case", on_delete=models.PROTECT, related_name="placements", verbose_name=_("case"))
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="placements", verbose_name=_("agency"))
    placed_at = models.DateTimeField(_("placed at"), default=timezone.now)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("placed by"),
    )
    balance_placed = MoneyField(_("balance placed"))
    recalled_at = models.DateTimeField(_("recalled at"), null=True, blank=True)
    recall_reason = models.CharField(_("recall reason"), max_length=20, choices=RecallReason.choices, blank=True)
    recall_note = models.TextField(_("recall note"), blank=True)
    amount_recovered = MoneyField(_("amount recovered"), default=0)
    commission_due = MoneyField(_("commission due"), default=0)

    class Meta:
        verbose_name = _("placement")
        verbose_name_plural = _("placements")
        ordering = ["-placed_at", "-id"]
        constraints = [
            # One current placement per case: two concurrent sweeps cannot both place it.
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(recalled_at__isnull=True),
                name="placement_one_current_per_case",
            ),
            models.CheckConstraint(condition=Q(balance_placed__gte=0), name="placement_balance_non_negative"),
            models.CheckConstraint(condition=Q(amount_recovered__gte=0), name="placement_recovered_non_negative"),
            models.CheckConstraint(
                condition=Q(recalled_at__isnull=True) | ~Q(recall_reason=""),
                name="placement_recall_has_reason",
            ),
        ]
        indexes = [
            # Agency load (current placements per agency) and an agency user's case list.
            models.Index(fields=["agency"], condition=Q(recalled_at__isnull=True), name="placement_current_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} -> {self.agency_id}"

    @property
    def is_current(self) -> bool:
        return self.recalled_at is None
