import itertools

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _


class StageQuerySet(models.QuerySet):
    def active(self) -> "StageQuerySet":
        return self.filter(active=True).order_by("order")


class Stage(models.Model):
    """One step of the collection path, entered when days past due reach `entry_dpd`.

    Admins edit these rules in Django admin; thresholds must rise strictly with `order`
    among active stages (checked by `clean` and by the admin's list editor).
    """

    code = models.SlugField(_("code"), max_length=32, unique=True)
    order = models.PositiveSmallIntegerField(_("order"), unique=True)
    name_en = models.CharField(_("name (English)"), max_length=100)
    name_zh_hans = models.CharField(_("name (Simplified Chinese)"), max_length=100)
    entry_dpd = models.PositiveIntegerField(
        _("entered at days past due"),
        help_text=_("The case enters this stage when days past due reach this number."),
    )
    requires_approval = models.BooleanField(
        _("requires approval"),
        default=False,
        help_text=_("A supervisor must approve before a case enters."),
    )
    entry_actions = models.JSONField(
        _("entry actions"),
        default=list,
        blank=True,
        help_text=_(
            'What happens on entry, in order, e.g. ["sms", "email"] or ["assign_collector", "call_task", "sms"].'
        ),
    )
    repeat_interval_days = models.PositiveSmallIntegerField(
        _("repeat every (days)"),
        null=True,
        blank=True,
        help_text=_("Repeat the entry messages this often while the case stays in the stage. Empty: never."),
    )
    active = models.BooleanField(_("active"), default=True)

    objects = StageQuerySet.as_manager()

    class Meta:
        verbose_name = _("stage rule")
        verbose_name_plural = _("stage rules")
        ordering = ["order"]
        constraints = [
            models.CheckConstraint(condition=Q(entry_dpd__gte=1), name="stage_entry_dpd_at_least_one"),
            models.CheckConstraint(
                condition=Q(repeat_interval_days__isnull=True) | Q(repeat_interval_days__gte=1),
                name="stage_repeat_interval_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name_zh_hans if (get_language() or "").lower().startswith("zh") else self.name_en

    def clean(self) -> None:
        if not isinstance(self.entry_actions, list) or not all(isinstance(a, str) and a for a in self.entry_actions):
            raise ValidationError({"entry_actions": _('Write the actions as a list of names, e.g. ["sms", "email"].')})
        if self.active and self.order is not None and self.entry_dpd is not None:
            others = Stage.objects.active().exclude(pk=self.pk).values("code", "order", "entry_dpd")
            rules = [(o["order"], o["entry_dpd"], o["code"]) for o in others]
            rules.append((self.order, self.entry_dpd, self.code or _("this stage")))
            problem = threshold_problem(rules)
            if problem:
                raise ValidationError({"entry_dpd": problem})


def threshold_problem(rules: list[tuple[int, int, str]]) -> str | None:
    """Return why (order, entry_dpd, code) rules are not strictly increasing, or None.

    Used by the model and by the admin's list editor, which checks all rows at once.
    """
    ordered = sorted(rules)
    for (_order_a, dpd_a, code_a), (_order_b, dpd_b, code_b) in itertools.pairwise(ordered):
        if dpd_b <= dpd_a:
            return _(
                "Thresholds must rise with the order: %(later)s (entered at %(dpd_b)d days past due) comes after "
                "%(earlier)s (entered at %(dpd_a)d), so it needs a threshold above %(dpd_a)d."
            ) % {"later": code_b, "earlier": code_a, "dpd_a": dpd_a, "dpd_b": dpd_b}
    return None
