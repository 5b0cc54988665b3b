"""Forms of the supervisor pages: they parse and check input, and name the field at fault."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils.translation import gettext_lazy as _

from cases.models import Case, CaseStatus, Stage
from cases.selectors_dashboard import Period, TeamFilters, collectors

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 731
UNASSIGNED = "none"


class DateInput(forms.DateInput):
    input_type = "date"


class DashboardRangeForm(forms.Form):
    start = forms.DateField(label=_("From"), required=False, widget=DateInput)
    end = forms.DateField(label=_("To"), required=False, widget=DateInput)

    def __init__(self, *args, today: dt.date, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.today = today

    def clean(self):
        data = super().clean()
        end = data.get("end") or self.today
        start = data.get("start") or end - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1)
        if "start" in self.errors or "end" in self.errors:
            return data
        if start > end:
            self.add_error("start", _("The start of the range must be on or before its end."))
        elif (end - start).days >= MAX_RANGE_DAYS:
            self.add_error("end", _("A range may span at most two years."))
        data["start"], data["end"] = start, end
        return data

    def period(self) -> Period:
        return Period(start=self.cleaned_data["start"], end=self.cleaned_data["end"], today=self.today)


class TeamFilterForm(forms.Form):
    stage = forms.ChoiceField(label=_("Stage"), required=False)
    status = forms.ChoiceField(label=_("Status"), required=False, choices=[("", _("Any status")), *CaseStatus.choices])
    collector = forms.ChoiceField(label=_("Collector"), required=False)
    min_dpd = forms.IntegerField(label=_("Days past due from"), required=False, min_value=0)
    max_dpd = forms.IntegerField(label=_("to"), required=False, min_value=0)

    def __init__(self, *args, stages: list[Stage], people, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["stage"].choices = [("", _("Any stage"))] + [(s.code, s.display_name) for s in stages]
        self.fields["collector"].choices = [("", _("Anyone")), (UNASSIGNED, _("Nobody (unassigned)"))] + [
            (str(u.pk), u.get_username()) for u in people
        ]

    def clean(self):
        data = super().clean()
        low, high = data.get("min_dpd"), data.get("max_dpd")
        if low is not None and high is not None and low > high:
            self.add_error("max_dpd", _("The upper bound of days past due must not be below the lower bound."))
        return data

    def filters(self) -> TeamFilters:
        data = self.cleaned_data if self.is_valid() else {}
        collector = data.get("collector") or ""
        return TeamFilters(
            stage=data.get("stage") or "",
            status=data.get("status") or "",
            collector=int(collector) if collector.isdigit() else None,
            unassigned=collector == UNASSIGNED,
            min_dpd=data.get("min_dpd"),
            max_dpd=data.get("max_dpd"),
        )


class ReassignForm(forms.Form):
    cases = forms.ModelMultipleChoiceField(
        label=_("Cases"),
        queryset=Case.objects.all(),
        error_messages={
            "required": _("Tick at least one case to reassign."),
            "invalid_choice": _("Case %(value)s does not exist."),
            "invalid_pk_value": _("“%(pk)s” is not a case number."),
        },
    )
    to_user = forms.ModelChoiceField(
        label=_("Reassign to"),
        queryset=collectors(),
        error_messages={
            "required": _("Choose the collector to give the cases to."),
            "invalid_choice": _("Choose an active collector."),
        },
    )


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        error_messages={"required": _("Say why the escalation is declined.")},
    )
