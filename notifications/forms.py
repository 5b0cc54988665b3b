"""Admin forms for message templates: the text is checked by ``templating.validate_template``
(variables, syntax, forbidden wording, the SMS opt-out line) and errors land on their fields."""

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from .models import MessageTemplate
from .templating import TEXT_FIELDS, VARIABLES, validate_template


def variables_help() -> str:
    rows = format_html_join("", "<li><code>{{{{ {} }}}}</code>: {}</li>", sorted(VARIABLES.items()))
    return format_html(
        "{}<ul>{}</ul>",
        _(
            "Django template syntax; {% if %} may choose between sentences. Every value is already formatted "
            "in the borrower's language. Variables:"
        ),
        rows,
    )


def normalise_newlines(text: str) -> str:
    # Browsers send a textarea's lines as CRLF; stored as LF, an unchanged text compares equal
    # to what was approved, and an SMS does not carry invisible carriage returns.
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ("name", "stage", "channel", "language", "active", "subject", "body", "html_body", "approved")
        widgets = {
            "body": forms.Textarea(attrs={"rows": 10, "cols": 100}),
            "html_body": forms.Textarea(attrs={"rows": 14, "cols": 100}),
        }
        help_texts = {
            "subject": _("Email only; leave empty for SMS."),
            "html_body": _("Email only: the HTML part, sent alongside the text. Values are HTML-escaped."),
            "approved": _(
                "Only approved templates are sent. Ticking this records you as the approver. Editing the subject, "
                "text or HTML of an approved template withdraws its approval: it must be approved again, in a "
                "later save or with the list's approve action, before it is sent."
            ),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "body" in self.fields:
            self.fields["body"].help_text = format_html(
                "{}<br>{}",
                _("An SMS must include {{ opt_out_line }}, outside any {% if %}."),
                variables_help(),
            )

    def clean_subject(self) -> str:
        return normalise_newlines(self.cleaned_data.get("subject", ""))

    def clean_body(self) -> str:
        return normalise_newlines(self.cleaned_data.get("body", ""))

    def clean_html_body(self) -> str:
        return normalise_newlines(self.cleaned_data.get("html_body", ""))

    def clean(self) -> dict:
        cleaned = super().clean()
        language, channel = cleaned.get("language"), cleaned.get("channel")
        if not language or not channel:
            return cleaned
        errors = validate_template(
            subject=cleaned.get("subject") or "",
            body=cleaned.get("body") or "",
            html_body=cleaned.get("html_body") or "",
            language=language,
            channel=channel,
        )
        for field, messages in errors.items():
            for message in messages:
                self.add_error(field, message)
        return cleaned

    def text_changed(self) -> bool:
        """Whether the subject, text or HTML differ from what was stored (and approved)."""
        if self.instance._state.adding:
            return True
        return any(
            normalise_newlines(self.initial.get(field) or "") != (self.cleaned_data.get(field) or "")
            for field in TEXT_FIELDS
        )
