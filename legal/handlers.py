"""What legal does when cases move: registered with ``cases`` at start-up (LegalConfig.ready)."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from cases.actions import StageEntry, register_stage_action, register_stage_guard
from cases.dashboard import register_dashboard_panel
from cases.selectors import register_case_visibility
from cases.signals import cases_resolved

from .dashboard import agencies_panel
from .letters import demand_letters_generate
from .limitation import litigation_guard
from .models import LegalMatter, MatterStatus, Placement, RecallReason
from .roles import AGENCY_GROUP
from .services.matters import legal_matters_open
from .services.placements import cases_place, placements_recall


@register_stage_action("place_agency")
def place_with_agency(entries: list[StageEntry], action: str) -> None:
    # The sweep hands the whole batch at once; placement is set-based over it.
    cases_place(case_ids=[e.case_id for e in entries], now=entries[0].entered_at)


@register_stage_action("open_legal_matter")
def open_legal_matter(entries: list[StageEntry], action: str) -> None:
    first = entries[0]
    legal_matters_open(case_ids=[e.case_id for e in entries], actor_id=first.actor_id, now=first.entered_at)


@register_stage_action("demand_letter")
def demand_letter(entries: list[StageEntry], action: str) -> None:
    first = entries[0]
    case_ids = [e.case_id for e in entries]
    # A stage rule may list demand_letter without open_legal_matter: a letter needs a matter.
    legal_matters_open(case_ids=case_ids, actor_id=first.actor_id, now=first.entered_at)
    matter_ids = list(
        LegalMatter.objects.filter(case_id__in=case_ids)
        .exclude(status=MatterStatus.CLOSED)
        .values_list("pk", flat=True)
    )
    demand_letters_generate(matter_ids=matter_ids, actor_id=first.actor_id, now=first.entered_at)


def recall_on_resolve(sender, *, case_ids: list[int], reason: str, **kwargs) -> None:
    # A cured case leaves its agency: the placement closes with what it recovered, and the
    # agency's capacity is free again.
    placements_recall(
        placements=Placement.objects.filter(case_id__in=case_ids), reason=RecallReason.RESOLVED, now=timezone.now()
    )


def agency_visible_cases(user) -> Q:
    """Agency users see their own agency's current placements and nothing else."""
    return Q(pk__in=Placement.objects.filter(recalled_at__isnull=True, agency__members__user=user).values("case_id"))


cases_resolved.connect(recall_on_resolve, dispatch_uid="legal.recall_on_resolve")
register_stage_guard("litigation", litigation_guard)
register_case_visibility(AGENCY_GROUP, agency_visible_cases)
register_dashboard_panel("agencies", agencies_panel, order=80)
