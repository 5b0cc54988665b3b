"""Third-party collection agencies. Placements, legal matters and demand letters build on
this in the agencies-and-litigation issue."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


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
