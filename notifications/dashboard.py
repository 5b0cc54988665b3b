"""The notifications panel of the supervisor dashboard: message delivery by status and by
the rule that deferred, suppressed or failed a message. Registered with ``cases.dashboard``
from ``NotificationsConfig.ready`` (``cases`` does not import this app)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.db.models import Count
from django.utils.translation import gettext as _

from cases.dashboard import Chart, Panel, register_dashboard_panel
from cases.selectors_dashboard import Period

from .models import MessageStatus, OutboundMessage, Reason


def _bounds(period: Period) -> tuple[dt.datetime, dt.datetime]:
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    start = dt.datetime.combine(period.start, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(period.end + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return start, end


def message_delivery(period: Period) -> list[tuple[str, str, str, int]]:
    """(channel, status, reason, messages) for the messages queued in the range. One query."""
    start, end = _bounds(period)
    return list(
        OutboundMessage.objects.filter(created_at__gte=start, created_at__lt=end)
        .values_list("channel", "status", "reason")
        .annotate(n=Count("pk"))
        .order_by("channel", "status", "reason")
    )


def delivery_panel(period: Period) -> Panel:
    rows = message_delivery(period)
    statuses, reasons = dict(MessageStatus.choices), dict(Reason.choices)
    per_status: dict[str, int] = {}
    for _channel, status, _reason, count in rows:
        per_status[status] = per_status.get(status, 0) + count
    order = [s for s in MessageStatus.values if s in per_status]
    return Panel(
        key="delivery",
        title=_("Message delivery"),
        definition=_(
            "Automated and manual messages queued in the range, by channel, status and the rule behind a deferral, "
            "suppression or failure (quiet hours, SMS caps, hold, opt-out, no consent, provider error...). "
            "Delivered means the provider confirmed delivery to the handset or mailbox; sent means it accepted it."
        ),
        columns=[_("Channel"), _("Status"), _("Reason"), _("Messages")],
        rows=[
            [channel.upper(), str(statuses.get(status, status)), str(reasons.get(reason, reason)) if reason else "", n]
            for channel, status, reason, n in rows
        ],
        chart=Chart("bar", [str(statuses[s]) for s in order], [(_("Messages"), [per_status[s] for s in order])]),
    )


def register() -> None:
    register_dashboard_panel("delivery", delivery_panel, order=70)
