"""legal's panel on the supervisor dashboard (registered with cases.dashboard at start-up)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from cases.dashboard import Panel, Percent
from cases.selectors_dashboard import Period

from .selectors import agency_performance_stored


def agencies_panel(period: Period) -> Panel:
    """One query whatever the number of placements (the dashboard's query count is pinned):
    the figures stored on the placements, which the daily recall task refreshes."""
    rows = agency_performance_stored()
    return Panel(
        key="agencies",
        title=_("Third-party agencies"),
        definition=_(
            "Every placement since the start: cases placed with each agency, those it holds now, the balances "
            "placed, what was paid on the cases while placed (recovered), recovered as a share of the balances "
            "placed, and the commission due on it. Live figures and the cases no agency holds are on the "
            "agency performance and placements pages."
        ),
        columns=[
            _("Agency"),
            _("Placed"),
            _("Current"),
            _("Balance placed"),
            _("Recovered"),
            _("Recovery rate"),
            _("Commission due"),
        ],
        rows=[
            [
                row.agency.name,
                row.placed,
                row.current,
                row.balance_placed,
                row.recovered,
                Percent(None if row.recovery_rate is None else float(row.recovery_rate) / 100),
                row.commission,
            ]
            for row in rows
        ],
        note=_("Not limited to the date range; recovery as of the last daily refresh or recall."),
    )
