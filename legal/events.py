"""The kinds of case event legal writes on the case timeline (CaseEvent.kind is free text;
these extend cases' EventKind without cases knowing about legal)."""

from django.utils.translation import gettext_lazy as _

PLACED = "placed"
RECALLED = "recalled"
PLACEMENT_FAILED = "placement_failed"
MATTER_OPENED = "legal_matter_opened"
MATTER_STATUS = "legal_matter_status"
DEMAND_LETTER = "demand_letter"

LABELS = {
    PLACED: _("Placed with an agency"),
    RECALLED: _("Recalled from the agency"),
    PLACEMENT_FAILED: _("No agency available"),
    MATTER_OPENED: _("Legal matter opened"),
    MATTER_STATUS: _("Legal matter status changed"),
    DEMAND_LETTER: _("Demand letter generated"),
}
