"""What notifications does when cases move: registered with ``cases`` at start-up."""

from __future__ import annotations

from cases.actions import StageEntry, register_stage_action
from cases.signals import cases_resolved

from .models import Channel, Reason
from .outbox import cancel_for_cases, queue_stage_messages


@register_stage_action("sms")
def queue_sms(entries: list[StageEntry], action: str) -> None:
    queue_stage_messages(entries, Channel.SMS)


@register_stage_action("email")
def queue_email(entries: list[StageEntry], action: str) -> None:
    queue_stage_messages(entries, Channel.EMAIL)


def cancel_on_resolve(sender, *, case_ids: list[int], reason: str, **kwargs) -> None:
    # CONTRACT section 4: a resolved case's not-yet-sent messages are suppressed, reason "resolved".
    cancel_for_cases(case_ids, reason=Reason.RESOLVED)


cases_resolved.connect(cancel_on_resolve, dispatch_uid="notifications.cancel_on_resolve")
