from django.db import models
from django.utils.translation import gettext_lazy as _

from cases.validators import validate_e164_phone, validate_time_zone


class Language(models.TextChoices):
    EN = "en", _("English")
    ZH_HANS = "zh-hans", _("Simplified Chinese")


class Borrower(models.Model):
    external_id = models.CharField(_("external id"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    phone = models.CharField(
        _("phone"),
        max_length=20,
        validators=[validate_e164_phone],
        help_text=_("E.164, e.g. +8613812345678"),
    )
    email = models.EmailField(_("email"), blank=True)
    language = models.CharField(_("language"), max_length=10, choices=Language.choices, default=Language.ZH_HANS)
    timezone = models.CharField(
        _("time zone"),
        max_length=64,
        default="Asia/Shanghai",
        validators=[validate_time_zone],
    )
    national_id = models.CharField(_("national id"), max_length=32, blank=True)
    # Consent to automated messages per channel, as given to the lender.
    consent_sms = models.BooleanField(_("consents to SMS"), default=True)
    consent_email = models.BooleanField(_("consents to email"), default=True)
    # Opt-outs are the borrower's own request (STOP, 退订, Twilio 21610); they win over consent.
    sms_opt_out = models.BooleanField(_("opted out of SMS"), default=False)
    sms_opt_out_at = models.DateTimeField(_("opted out of SMS at"), null=True, blank=True)
    email_opt_out = models.BooleanField(_("opted out of email"), default=False)
    import_run = models.ForeignKey(
        "cases.ImportRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("borrower")
        verbose_name_plural = _("borrowers")
        indexes = [models.Index(fields=["phone"]), models.Index(fields=["name"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"

    @property
    def masked_national_id(self) -> str:
        return mask_identifier(self.national_id)

    @property
    def masked_phone(self) -> str:
        return mask_identifier(self.phone, keep_start=3)


def mask_identifier(value: str, *, keep_start: int = 2, keep_end: int = 4) -> str:
    """Show only the ends of an identifier: 110101199003074512 -> 11************4512."""
    if not value:
        return ""
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


class Relationship(models.TextChoices):
    SPOUSE = "spouse", _("Spouse")
    PARENT = "parent", _("Parent")
    CHILD = "child", _("Child")
    SIBLING = "sibling", _("Sibling")
    RELATIVE = "relative", _("Other relative")
    FRIEND = "friend", _("Friend")
    COLLEAGUE = "colleague", _("Colleague")
    EMPLOYER = "employer", _("Employer")
    OTHER = "other", _("Other")


class Contact(models.Model):
    """A third party linked to a borrower (an emergency contact, a relative...).

    Third parties never receive automated collection messages and are never told of the
    debt; the record exists so a collector can locate the borrower.
    """

    borrower = models.ForeignKey(Borrower, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(_("name"), max_length=200)
    phone = models.CharField(_("phone"), max_length=20, blank=True, validators=[validate_e164_phone])
    email = models.EmailField(_("email"), blank=True)
    relationship = models.CharField(_("relationship"), max_length=20, choices=Relationship.choices)
    is_emergency = models.BooleanField(_("emergency contact"), default=False)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        verbose_name = _("third-party contact")
        verbose_name_plural = _("third-party contacts")

    def __str__(self) -> str:
        return f"{self.name} ({self.get_relationship_display()})"
