from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .fields import MoneyField


class CaseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ON_HOLD = "on_hold", _("On hold")
    AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


# A case in one of these states is "open" for the one-open-case-per-loan rule.
LIVE_STATUSES = (CaseStatus.OPEN, CaseStatus.ON_HOLD, CaseStatus.AWAITING_APPROVAL)


class Case(models.Model):
    """An overdue episode of one loan, from the first missed day until it is cured or closed."""

    loan = models.ForeignKey("cases.Loan", on_delete=models.PROTECT, related_name="cases")
    stage = models.ForeignKey(
        "cases.Stage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="cases",
        verbose_name=_("stage"),
    )
    # The stage the case is waiting to enter while a supervisor's approval is pending.
    pending_stage = models.ForeignKey(
        "cases.Stage",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("pending stage"),
    )
    status = models.CharField(_("status"), max_length=20, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    days_past_due = models.PositiveIntegerField(_("days past due"), default=0)
    outstanding = MoneyField(_("outstanding"), default=0, help_text=_("Everything still owed on the loan."))
    overdue_amount = MoneyField(
        _("overdue amount"),
        default=0,
        help_text=_("What is owed on installments already due."),
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_cases",
        verbose_name=_("assigned collector"),
    )
    priority = models.IntegerField(_("priority"), default=0)
    # When the next piece of work on the case is due (the phone stage's call task).
    next_action_on = models.DateField(_("next action due"), null=True, blank=True)
    # Who asked for the pending stage (null: the sweep did). Four eyes: they cannot approve it.
    approval_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("approval requested by"),
    )
    approval_requested_at = models.DateTimeField(_("approval requested at"), null=True, blank=True)
    # After a supervisor declines a gated stage, the sweep does not ask again before this date.
    gate_snoozed_until = models.DateField(_("approval not asked again before"), null=True, blank=True)
    paused_until = models.DateField(_("paused until"), null=True, blank=True)
    last_contact_at = models.DateTimeField(_("last contact at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    stage_entered_at = models.DateTimeField(_("stage entered at"), null=True, blank=True)
    # The business date the current stage was entered: repeats count whole days from it.
    stage_entered_on = models.DateField(_("stage entered on"), null=True, blank=True)
    # How many repeats of the current stage's actions have fired (0 = only the entry).
    repeat_count = models.PositiveSmallIntegerField(_("repeats sent"), default=0)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        constraints = [
            models.UniqueConstraint(
                fields=["loan"],
                condition=Q(status__in=LIVE_STATUSES),
                name="case_one_open_per_loan",
            ),
            models.CheckConstraint(condition=Q(outstanding__gte=0), name="case_outstanding_non_negative"),
            models.CheckConstraint(condition=Q(overdue_amount__gte=0), name="case_overdue_non_negative"),
        ]
        indexes = [
            models.Index(fields=["status", "stage"], name="case_status_stage_idx"),
            models.Index(fields=["assigned_to", "status", "-priority"], name="case_queue_idx"),
            # A collector's queue in its exact order over live cases only: the first page is
            # 25 index entries, not a sort of all their cases (920 ms -> 0.1 ms for a
            # collector with 20,000 cases in a 1,000,000-case book, bench/pages.py).
            models.Index(
                F("assigned_to"),
                F("priority").desc(),
                # ASC is NULLS LAST on PostgreSQL, as the queue sorts; spelled out, SQLite
                # (the demo) would refuse the index.
                F("next_action_on").asc(),
                F("days_past_due").desc(),
                F("id"),
                condition=Q(status__in=["open", "on_hold", "awaiting_approval"]),
                name="case_queue_order_idx",
            ),
            # The API lists a person's cases in id order (stable pages): one index range, not a
            # walk along the primary key past everyone else's cases (bench/api.py).
            models.Index(fields=["assigned_to", "status", "id"], name="case_assignee_id_idx"),
            models.Index(fields=["days_past_due"], name="case_dpd_idx"),
            # The supervisors' team list: most overdue first, the id breaking ties, unfiltered or
            # filtered by stage, status or collector; each filter walks its own index in page
            # order instead of sorting thousands of matches (bench/pages.py).
            models.Index(fields=["-days_past_due", "-id"], name="case_team_dpd_idx"),
            models.Index(fields=["stage", "-days_past_due", "-id"], name="case_team_stage_idx"),
            models.Index(fields=["status", "-days_past_due", "-id"], name="case_team_status_idx"),
            models.Index(fields=["assigned_to", "-days_past_due", "-id"], name="case_team_collector_idx"),
            # Approvals waiting, oldest request first (dashboard and approvals page).
            models.Index(
                fields=["approval_requested_at", "id"],
                condition=Q(status="awaiting_approval"),
                name="case_approvals_idx",
            ),
        ]
        permissions = [
            ("view_all_cases", _("Can see every case, not only assigned ones")),
            ("assign_case", _("Can assign and reassign cases")),
            (
                "approve_escalation",
                _("Can approve entry to a stage that requires approval"),
            ),
            (
                "reveal_personal_data",
                _("Can reveal masked phone and id numbers, with a reason"),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.loan_id}"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class EventKind(models.TextChoices):
    OPENED = "opened", _("Opened")
    STAGE_CHANGED = "stage_changed", _("Stage changed")
    AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    PAYMENT = "payment", _("Payment")
    PROMISE_MADE = "promise_made", _("Promise to pay")
    PROMISE_KEPT = "promise_kept", _("Promise kept")
    PROMISE_BROKEN = "promise_broken", _("Promise broken")
    PROMISE_CANCELLED = "promise_cancelled", _("Promise cancelled")
    PLAN_PROPOSED = "plan_proposed", _("Payment plan proposed")
    PLAN_APPROVED = "plan_approved", _("Payment plan approved")
    PLAN_KEPT = "plan_kept", _("Payment plan kept")
    PLAN_BROKEN = "plan_broken", _("Payment plan broken")
    HOLD_PLACED = "hold_placed", _("Hold placed")
    HOLD_RELEASED = "hold_released", _("Hold released")
    CONTACT = "contact", _("Contact attempt")
    NOTE = "note", _("Note")
    PII_REVEALED = "pii_revealed", _("Personal data revealed")
    MESSAGE = "message", _("Message")
    ASSIGNED = "assigned", _("Assigned")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


class AppendOnlyError(Exception):
    """Raised when code tries to change or remove a timeline event."""


class CaseEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Case events are append-only: they cannot be updated.")

    def delete(self):
        raise AppendOnlyError("Case events are append-only: they cannot be deleted.")


class CaseEvent(models.Model):
    """One entry of a case's timeline. Append-only: the model refuses updates and deletes,
    and on PostgreSQL (and SQLite) a trigger refuses them too, so not even raw SQL can
    rewrite what happened."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    kind = models.CharField(_("kind"), max_length=32, choices=EventKind.choices)
    # Null actor means the system (the sweep, a webhook, an import).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("actor"),
    )
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    objects = CaseEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("case event")
        verbose_name_plural = _("case events")
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["case", "at"], name="caseevent_case_at_idx"),
            models.Index(fields=["kind", "at"]),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}"

    @property
    def actor_label(self) -> str:
        return self.actor.get_username() if self.actor_id else "system"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Case events are append-only: they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Case events are append-only: they cannot be deleted.")


class HoldReason(models.TextChoices):
    DISPUTE = "dispute", _("Dispute")
    CEASE_COMMUNICATION = "cease_communication", _("Cease communication")
    BREATHING_SPACE = "breathing_space", _("Breathing space")
    BANKRUPTCY = "bankruptcy", _("Bankruptcy")
    DECEASED = "deceased", _("Deceased")
    LEGAL_REVIEW = "legal_review", _("Legal review")


class Hold(models.Model):
    """A pause on a case: no escalation and no automated messages while it is active."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="holds")
    reason = models.CharField(_("reason"), max_length=32, choices=HoldReason.choices)
    note = models.TextField(_("note"), blank=True)
    starts_at = models.DateTimeField(_("starts at"), default=timezone.now)
    ends_on = models.DateField(_("until"), null=True, blank=True, help_text=_("Empty: until released."))
    released_at = models.DateTimeField(_("released at"), null=True, blank=True)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        indexes = [
            models.Index(
                fields=["case"],
                condition=Q(released_at__isnull=True),
                name="hold_active_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} ({self.case_id})"

    @property
    def is_active(self) -> bool:
        return self.released_at is None


class SweepRun(models.Model):
    """One run of the escalation sweep, kept so that an older business date is refused and
    supervisors can see what each run did."""

    as_of = models.DateField(_("business date"), db_index=True)
    dry_run = models.BooleanField(_("dry run"), default=False)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    summary = models.JSONField(_("summary"), default=dict, blank=True)

    class Meta:
        verbose_name = _("sweep run")
        verbose_name_plural = _("sweep runs")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.as_of} ({self.started_at:%Y-%m-%d %H:%M})"
