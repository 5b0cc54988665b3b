"""Forms of the collector's pages. They parse and show errors; the rules live in
``cases.services.work``, whose ValidationError({field: [message]}) lands on the field of
the same name (see ``apply_service_errors``)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .models import ContactChannel, ContactOutcome, HoldReason, Stage
from .services.work import BORROWER_RAISED_HOLDS, PLAN_MAX_INSTALLMENTS, REVEALABLE_FIELDS

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
MONEY_INPUT = forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal"})


def money_field(label, *, required: bool = True) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, required=required, max_digits=14, decimal_places=2, min_value=Decimal("0"), widget=MONEY_INPUT
    )


def apply_service_errors(form: forms.Form, error: ValidationError, field_map: dict[str, str] | None = None) -> None:
    """Put a service's ValidationError on the form: each message on its field when the form
    has it (renamed through ``field_map``), on the form as a whole otherwise."""
    field_map = field_map or {}
    if hasattr(error, "error_dict"):
        for name, errors in error.message_dict.items():
            target = field_map.get(name, name)
            form.add_error(target if target in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


class QueueFilterForm(forms.Form):
    # A plain choice field: the stages are read once by the view, and a ModelChoiceField
    # would query them again to validate.
    stage = forms.ChoiceField(label=_("Stage"), required=False)
    min_dpd = forms.IntegerField(label=_("DPD from"), required=False, min_value=0)
    max_dpd = forms.IntegerField(label=_("DPD to"), required=False, min_value=0)
    broken_promise = forms.BooleanField(label=_("Broken promise"), required=False)

    def __init__(self, *args, stages: list[Stage], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].choices = [("", _("All"))] + [(s.code, s.display_name) for s in stages]
        self._stages = {s.code: s for s in stages}

    def clean_stage(self) -> Stage | None:
        return self._stages.get(self.cleaned_data.get("stage") or "")

    def clean(self):
        cleaned = super().clean()
        low, high = cleaned.get("min_dpd"), cleaned.get("max_dpd")
        if low is not None and high is not None and low > high:
            self.add_error("max_dpd", _("Must be at least the lower bound (%(low)s).") % {"low": low})
        return cleaned


class ContactForm(forms.Form):
    """A contact attempt, and optionally the promise the borrower made on it."""

    channel = forms.ChoiceField(label=_("Channel"), choices=ContactChannel.choices, initial=ContactChannel.PHONE)
    outcome = forms.ChoiceField(label=_("Outcome"), choices=ContactOutcome.choices)
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    promise_amount = money_field(_("Promised amount"), required=False)
    promise_due_date = forms.DateField(label=_("Promised by"), required=False, widget=DATE_INPUT)

    def clean(self):
        cleaned = super().clean()
        amount, due = cleaned.get("promise_amount"), cleaned.get("promise_due_date")
        if cleaned.get("outcome") == ContactOutcome.PROMISE and (amount is None or due is None):
            if amount is None and "promise_amount" not in self.errors:
                self.add_error("promise_amount", _("Enter the promised amount."))
            if due is None and "promise_due_date" not in self.errors:
                self.add_error("promise_due_date", _("Enter the date the borrower promised to pay by."))
        elif (amount is None) != (due is None):
            missing = "promise_due_date" if due is None else "promise_amount"
            if missing not in self.errors:
                self.add_error(missing, _("Give both the amount and the date of the promise, or neither."))
        return cleaned

    @property
    def has_promise(self) -> bool:
        return self.cleaned_data.get("promise_amount") is not None and self.cleaned_data.get("promise_due_date")


class PromiseForm(forms.Form):
    amount = money_field(_("Amount"))
    due_date = forms.DateField(label=_("Promised by"), widget=DATE_INPUT)


class PlanForm(forms.Form):
    """A payment plan: up to PLAN_ROWS installments (date and amount), a waiver and a note."""

    PLAN_ROWS = min(6, PLAN_MAX_INSTALLMENTS)

    waived_amount = money_field(_("Waived amount"), required=False)
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for number in range(1, self.PLAN_ROWS + 1):
            self.fields[f"date_{number}"] = forms.DateField(
                label=_("Installment %(n)s date") % {"n": number}, required=False, widget=DATE_INPUT
            )
            self.fields[f"amount_{number}"] = money_field(_("Installment %(n)s amount") % {"n": number}, required=False)

    def rows(self):
        """(date field, amount field) pairs, for the template."""
        return [(self[f"date_{n}"], self[f"amount_{n}"]) for n in range(1, self.PLAN_ROWS + 1)]

    def clean(self):
        cleaned = super().clean()
        for number in range(1, self.PLAN_ROWS + 1):
            due, amount = cleaned.get(f"date_{number}"), cleaned.get(f"amount_{number}")
            if (due is None) != (amount is None) and not self.errors.get(f"date_{number}"):
                missing = f"date_{number}" if due is None else f"amount_{number}"
                if missing not in self.errors:
                    self.add_error(missing, _("Give both the date and the amount, or leave the row empty."))
        return cleaned

    def installments(self) -> list[tuple]:
        rows = []
        for number in range(1, self.PLAN_ROWS + 1):
            due, amount = self.cleaned_data.get(f"date_{number}"), self.cleaned_data.get(f"amount_{number}")
            if due is not None and amount is not None:
                rows.append((due, amount))
        return rows


class NoteForm(forms.Form):
    text = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)


class HoldForm(forms.Form):
    reason = forms.ChoiceField(label=_("Reason"), choices=HoldReason.choices)
    until = forms.DateField(
        label=_("Until"), required=False, widget=DATE_INPUT, help_text=_("Empty: until a supervisor releases it.")
    )
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, any_reason: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not any_reason:
            # Collectors record only the holds a borrower raises; the service enforces it too.
            self.fields["reason"].choices = [c for c in HoldReason.choices if c[0] in BORROWER_RAISED_HOLDS]


class HoldReleaseForm(forms.Form):
    note = forms.CharField(label=_("Note"), required=False, max_length=500)


class RevealForm(forms.Form):
    field = forms.ChoiceField(
        label=_("Show"),
        choices=[(f, _("Phone") if f == "phone" else _("National id")) for f in REVEALABLE_FIELDS],
    )
    reason = forms.CharField(label=_("Reason"), max_length=200, help_text=_("Recorded on the case's timeline."))
