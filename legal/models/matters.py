"""Legal matters (法律诉讼): from the approved decision to sue until the matter is closed."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases.models.fields import MoneyField
from legal.storage import private_legal_storage


class MatterStatus(models.TextChoices):
    APPROVED = "approved", _("Approved")
    LETTER_SENT = "letter_sent", _("Demand letter sent")
    FILED = "filed", _("Filed with the court")
    HEARING_SCHEDULED = "hearing_scheduled", _("Hearing scheduled")
    JUDGMENT = "judgment", _("Judgment")
    ENFORCEMENT = "enforcement", _("Enforcement")
    CLOSED = "closed", _("Closed")


class LegalMatter(models.Model):
    case = models.ForeignKey(
        "cases.Case", on_delete=models.PROTECT, related_name="legal_matters", verbose_name=_("case")
    )
    status = models.CharField(_("status"), max_length=20, choices=MatterStatus.choices, default=MatterStatus.APPROVED)
    law_firm = models.CharField(_("law firm"), max_length=200, blank=True)
    lawyer = models.CharField(_("lawyer"), max_length=200, blank=True)
    court = models.CharField(_("court"), max_length=200, blank=True)
    court_case_number = models.CharField(_("court case number"), max_length=100, blank=True)
    filed_on = models.DateField(_("filing date"), null=True, blank=True)
    judgment_amount = MoneyField(_("judgment amount"), null=True, blank=True)
    judgment_on = models.DateField(_("judgment date"), null=True, blank=True)
    costs = MoneyField(_("costs"), default=0)
    # The amount claimed when the matter opened (the case's outstanding balance then).
    amount_claimed = MoneyField(_("amount claimed"), default=0)
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("approved by"),
    )
    status_changed_at = models.DateTimeField(_("status changed at"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    close_note = models.TextField(_("closing note"), blank=True)

    class Meta:
        verbose_name = _("legal matter")
        verbose_name_plural = _("legal matters")
        ordering = ["-opened_at", "-id"]
        constraints = [
            # A case has at most one matter in progress: approving litigation twice opens one.
            models.UniqueConstraint(
                fields=["case"],
                condition=~Q(status="closed"),
                name="legalmatter_one_open_per_case",
            ),
            models.CheckConstraint(condition=Q(costs__gte=0), name="legalmatter_costs_non_negative"),
            models.CheckConstraint(
                condition=Q(judgment_amount__isnull=True) | Q(judgment_amount__gte=0),
                name="legalmatter_judgment_non_negative",
            ),
        ]
        indexes = [models.Index(fields=["status", "-opened_at"], name="legalmatter_status_idx")]
        permissions = [
            ("manage_legalmatter", _("Can move legal matters through their stages")),
            ("download_legaldocument", _("Can download demand letters and court documents")),
            ("recall_placement", _("Can recall and re-place agency placements")),
        ]

    def __str__(self) -> str:
        return f"{self.court_case_number or self.pk} ({self.get_status_display()})"


class Hearing(models.Model):
    matter = models.ForeignKey(LegalMatter, on_delete=models.CASCADE, related_name="hearings")
    at = models.DateTimeField(_("hearing at"))
    location = models.CharField(_("courtroom"), max_length=200, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("hearing")
        verbose_name_plural = _("hearings")
        ordering = ["at"]
        indexes = [models.Index(fields=["at"], name="hearing_at_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M}"


class DocumentKind(models.TextChoices):
    DEMAND_LETTER = "demand_letter", _("Demand letter")
    COURT = "court", _("Court document")
    OTHER = "other", _("Other")


def _document_path(instance: "LegalDocument", filename: str) -> str:
    return f"matters/{instance.matter_id}/{filename}"


class LegalDocument(models.Model):
    """A file of a matter. Kept in private storage and identified by its SHA-256, so a letter
    shown in court can be proven to be the one the portal generated."""

    matter = models.ForeignKey(LegalMatter, on_delete=models.PROTECT, related_name="documents")
    kind = models.CharField(_("kind"), max_length=20, choices=DocumentKind.choices)
    title = models.CharField(_("title"), max_length=200)
    file = models.FileField(_("file"), upload_to=_document_path, storage=private_legal_storage, max_length=300)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    language = models.CharField(_("language"), max_length=10, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = _("legal document")
        verbose_name_plural = _("legal documents")
        ordering = ["created_at", "id"]
        constraints = [
            # One generated demand letter per matter: a repeated handler run makes no second one.
            models.UniqueConstraint(
                fields=["matter"], condition=Q(kind="demand_letter"), name="legaldocument_one_letter_per_matter"
            ),
        ]

    def __str__(self) -> str:
        return self.title
