"""The portal's user: Django's user plus the preferences a collector's day depends on.

A custom user model is set from the first migration because Django cannot switch to one
later without rewriting every foreign key to users.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    """The Django groups that CONTRACT section 9 names (created by a data migration)."""

    COLLECTOR = "collector", _("Collector")
    SUPERVISOR = "supervisor", _("Supervisor")
    LEGAL = "legal", _("Legal")


class User(AbstractUser):
    language = models.CharField(_("interface language"), max_length=10, choices=settings.LANGUAGES, default="en")
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        blank=True,
        help_text=_("IANA name, e.g. Asia/Shanghai. Empty: the portal's business time zone."),
    )
    # When the collector last received a case: ties in least-loaded assignment go to
    # whoever has waited longest.
    last_assigned_at = models.DateTimeField(_("last assigned at"), null=True, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def has_role(self, role: str) -> bool:
        return self.groups.filter(name=role).exists()
