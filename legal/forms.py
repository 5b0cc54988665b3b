"""Forms of the legal pages: they parse input; the services decide."""

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Agency


class FileForm(forms.Form):
    court = forms.CharField(label=_("Court"), max_length=200)
    court_case_number = forms.CharField(label=_("Court case number"), max_length=100)
    filed_on = forms.DateField(label=_("Filing date"), widget=forms.DateInput(attrs={"type": "date"}))
    law_firm = forms.CharField(label=_("Law firm"), max_length=200, required=False)
    lawyer = forms.CharField(label=_("Lawyer"), max_length=200, required=False)


class HearingForm(forms.Form):
    at = forms.DateTimeField(label=_("Hearing at"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    location = forms.CharField(label=_("Courtroom"), max_length=200, required=False)
    note = forms.CharField(label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2}))


class JudgmentForm(forms.Form):
    judgment_amount = forms.DecimalField(label=_("Judgment amount"), max_digits=14, decimal_places=2, min_value=0)
    judgment_on = forms.DateField(label=_("Judgment date"), widget=forms.DateInput(attrs={"type": "date"}))
    costs = forms.DecimalField(label=_("Costs"), max_digits=14, decimal_places=2, min_value=0, required=False)


class CloseForm(forms.Form):
    note = forms.CharField(label=_("Why is the matter closed?"), max_length=2000)


class EmptyForm(forms.Form):
    pass


class RecallForm(forms.Form):
    note = forms.CharField(label=_("Reason"), max_length=2000, required=False)
    replace = forms.BooleanField(label=_("Place with another agency at once"), required=False)


class PlaceForm(forms.Form):
    agency = forms.ModelChoiceField(
        label=_("Agency"),
        queryset=Agency.objects.filter(active=True),
        required=False,
        empty_label=_("Least-loaded agency with room"),
    )
