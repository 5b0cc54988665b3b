"""Summary rows behind the supervisor dashboard.

The dashboard never scans the case, event or payment tables for a date range: it reads
these small tables, which ``cases.services.reporting.dashboard_refresh`` keeps up to date
(a periodic task, set-based and idempotent). So the dashboard costs about the same at ten
thousand cases as at a million: the rows here grow with days x stages x buckets and days x
collectors, not with cases. The one table that grows with cases, ``CaseMonthBucket``, is
only read by the refresh, never by a page.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .fields import MoneyField


class AgingBucket(models.TextChoices):
    """Aging buckets by days past due (the trade's M1/M2/M3 months on book past due)."""

    M1 = "m1", _("M1 (1-30 days)")
    M2 = "m2", _("M2 (31-60 days)")
    M3 = "m3", _("M3 (61-90 days)")
    M3_PLUS = "m3plus", _("M3+ (over 90 days)")
    # A case that left collections in the month: paid back to 0 days past due, or closed.
    CURED = "cured", _("Cured")
    CLOSED = "closed", _("Closed")


# The buckets a live, overdue case can be in, in order; cured and closed are where cases leave.
OVERDUE_BUCKETS = (AgingBucket.M1, AgingBucket.M2, AgingBucket.M3, AgingBucket.M3_PLUS)
# Upper bound (inclusive) of days past due of each overdue bucket; M3+ has none.
BUCKET_LIMITS = ((AgingBucket.M1, 30), (AgingBucket.M2, 60), (AgingBucket.M3, 90))


class StageSnapshot(models.Model):
    """Live cases on one business date, per stage and aging bucket: counts and balances.

    Written by every refresh for the refresh's business date, so the row of a past date
    is the book as the last refresh of that day saw it.
    """

    date = models.DateField(_("date"))
    # The code, not a foreign key: stages are admin data and may be renamed or retired
    # while their history stays. Empty: a case not yet in any stage.
    stage_code = models.CharField(_("stage"), max_length=32, blank=True)
    bucket = models.CharField(_("aging bucket"), max_length=8, choices=AgingBucket.choices)
    case_count = models.PositiveIntegerField(_("cases"), default=0)
    balance = MoneyField(_("balance"), default=0, help_text=_("Outstanding on the cases."))
    overdue = MoneyField(_("overdue"), default=0, help_text=_("Owed on installments already due."))

    class Meta:
        verbose_name = _("stage snapshot")
        verbose_name_plural = _("stage snapshots")
        constraints = [
            models.UniqueConstraint(fields=["date", "stage_code", "bucket"], name="stage_snapshot_unique"),
        ]
        permissions = [("view_dashboard", _("Can see the supervisor dashboard"))]

    def __str__(self) -> str:
        return f"{self.date} {self.stage_code or '-'} {self.bucket}: {self.case_count}"


class CaseMonthBucket(models.Model):
    """Each case's aging bucket at the end of a month (the current month: as of the last
    refresh). Roll rates compare a case's row of one month with its row of the next."""

    month = models.DateField(_("month"), help_text=_("The first day of the month."))
    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="+")
    bucket = models.CharField(_("aging bucket"), max_length=8, choices=AgingBucket.choices)
    balance = MoneyField(_("balance"), default=0)

    class Meta:
        verbose_name = _("case month bucket")
        verbose_name_plural = _("case month buckets")
        constraints = [models.UniqueConstraint(fields=["month", "case"], name="case_month_bucket_unique")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.case_id} {self.bucket}"


class BucketRoll(models.Model):
    """How many cases of a bucket at the end of the previous month sat in each bucket at
    the end of ``month``: the roll-rate matrix, one row per (from, to) pair."""

    month = models.DateField(_("month"), help_text=_("The first day of the month the cases rolled into."))
    from_bucket = models.CharField(_("from"), max_length=8, choices=AgingBucket.choices)
    to_bucket = models.CharField(_("to"), max_length=8, choices=AgingBucket.choices)
    case_count = models.PositiveIntegerField(_("cases"), default=0)
    balance = MoneyField(_("balance"), default=0, help_text=_("Their balance at the end of the previous month."))

    class Meta:
        verbose_name = _("bucket roll")
        verbose_name_plural = _("bucket rolls")
        constraints = [
            models.UniqueConstraint(fields=["month", "from_bucket", "to_bucket"], name="bucket_roll_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.from_bucket}->{self.to_bucket}: {self.case_count}"


class DailyActivity(models.Model):
    """What happened across the whole book on one business date."""

    date = models.DateField(_("date"), unique=True)
    cases_opened = models.PositiveIntegerField(_("cases opened"), default=0)
    cases_cured = models.PositiveIntegerField(_("cases cured"), default=0)
    cases_closed = models.PositiveIntegerField(_("cases closed"), default=0)
    escalations = models.PositiveIntegerField(_("escalations"), default=0)
    promises_made = models.PositiveIntegerField(_("promises made"), default=0)
    promises_kept = models.PositiveIntegerField(_("promises kept"), default=0)
    promises_broken = models.PositiveIntegerField(_("promises broken"), default=0)
    contacts = models.PositiveIntegerField(_("contact attempts"), default=0)
    right_party_contacts = models.PositiveIntegerField(_("right-party contacts"), default=0)
    amount_collected = MoneyField(_("amount collected"), default=0)

    class Meta:
        verbose_name = _("daily activity")
        verbose_name_plural = _("daily activity")

    def __str__(self) -> str:
        return str(self.date)


class CollectorDay(models.Model):
    """One collector's work on one business date."""

    date = models.DateField(_("date"))
    collector = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    contacts = models.PositiveIntegerField(_("contact attempts"), default=0)
    right_party_contacts = models.PositiveIntegerField(_("right-party contacts"), default=0)
    promises = models.PositiveIntegerField(_("promises"), default=0)
    amount_collected = MoneyField(_("amount collected"), default=0)

    class Meta:
        verbose_name = _("collector day")
        verbose_name_plural = _("collector days")
        constraints = [models.UniqueConstraint(fields=["date", "collector"], name="collector_day_unique")]
        indexes = [models.Index(fields=["collector", "date"], name="collector_day_idx")]

    def __str__(self) -> str:
        return f"{self.date} {self.collector_id}"


class DashboardRefresh(models.Model):
    """The last refresh of the summary rows (one row, id 1): shown on the dashboard as the
    time its figures date from, and locked by each refresh so two run one after the other."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    as_of = models.DateField(_("business date"), null=True, blank=True)
    refreshed_at = models.DateTimeField(_("refreshed at"), null=True, blank=True)
    # What the last refresh that changed something changed, per table: for operators.
    changes = models.JSONField(_("changes"), default=dict, blank=True)

    class Meta:
        verbose_name = _("dashboard refresh")
        verbose_name_plural = _("dashboard refreshes")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="dashboard_refresh_single_row")]

    def __str__(self) -> str:
        return f"{self.as_of} ({self.refreshed_at})"
