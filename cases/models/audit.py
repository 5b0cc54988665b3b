"""Who looked at which borrower: an access log for personal data, kept for audits.

Append-only like the case timeline: the model refuses updates and deletes, and a
PostgreSQL trigger (migration 0012) refuses them for everyone, raw SQL included, so that a
user with database access cannot erase the trace of what they looked at.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .cases import AppendOnlyError


class BorrowerViewQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Borrower views are append-only: they cannot be updated.")

    def delete(self):
        raise AppendOnlyError("Borrower views are append-only: they cannot be deleted.")


class BorrowerView(models.Model):
    """One look at a borrower's personal data: the case page, a revealed phone or id number,
    an API read. ``what`` names the screen or field; ``reason`` is what the user gave when
    the view needed one (revealing a masked number)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("user")
    )
    borrower = models.ForeignKey(
        "cases.Borrower", on_delete=models.PROTECT, related_name="views", verbose_name=_("borrower")
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    what = models.CharField(_("what"), max_length=64)
    reason = models.TextField(_("reason"), blank=True)

    objects = BorrowerViewQuerySet.as_manager()

    class Meta:
        verbose_name = _("borrower view")
        verbose_name_plural = _("borrower views")
        ordering = ["at", "id"]
        indexes = [
            # "Who saw this borrower?" and "what did this user look at?", newest first.
            models.Index(fields=["borrower", "at"], name="borrowerview_borrower_at_idx"),
            models.Index(fields=["user", "at"], name="borrowerview_user_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.what}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Borrower views are append-only: they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Borrower views are append-only: they cannot be deleted.")
