"""The compliance policy that bounds every automated message (CONTRACT section 6).

The outbox, templates and channels arrive with the notifications issue; the policy
exists from the start so admins can see and tune the limits the portal promises.
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
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
