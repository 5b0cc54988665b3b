"""Placing cases with third-party agencies (第三方机构) and recalling them.

Every write here is set-based: a batch of entering cases costs a fixed handful of queries
whatever its size. Concurrency: placing locks the active agencies' rows first, so two
sweeps placing at once take turns and each sees the other's placements when it counts
the agencies' loads; the partial unique constraint (one current placement per case) is
the backstop. Recalls claim rows with SELECT ... FOR UPDATE on ``recalled_at IS NULL``, so a
second or concurrent recall finds nothing left to do.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, DecimalField, Exists, ExpressionWrapper, F, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.exceptions import ConflictError
from cases.models import Case, CaseEvent, Payment
from cases.models.cases import LIVE_STATUSES
from cases.models.fields import MONEY_DIGITS, MONEY_PLACES, ZERO
from legal import events
from legal.models import Agency, Placement, RecallReason
from legal.roles import RECALL_PLACEMENTS, require_permission

_MONEY = DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)


@dataclass
class PlacementResult:
    # case id -> agency id of the placements made.
    placed: dict[int, int] = field(default_factory=dict)
    # Cases that needed an agency and found none with capacity (flagged with an event).
    unplaced: list[int] = field(default_factory=list)


def recovered_subquery(now: dt.datetime) -> Coalesce:
    """Payments on the placed case's loan between placement and recall (or ``now``), as an
    expression on Placement rows: one correlated subquery, no query per placement."""
    payments = (
        Payment.objects.filter(
            loan__cases__id=OuterRef("case_id"),
            paid_at__gte=OuterRef("placed_at"),
            paid_at__lte=Coalesce(OuterRef("recalled_at"), Value(now)),
        )
        .order_by()
        .values("loan_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Coalesce(Subquery(payments, output_field=_MONEY), Value(ZERO), output_field=_MONEY)


def placements_refresh_recovery(*, placements: QuerySet[Placement], now: dt.datetime | None = None) -> int:
    """Recompute amount recovered and commission due of ``placements`` in two UPDATEs."""
    now = now or timezone.now()
    count = placements.update(amount_recovered=recovered_subquery(now))
    commission = Agency.objects.filter(pk=OuterRef("agency_id")).values("commission_percent")
    placements.update(
        commission_due=ExpressionWrapper(
            F("amount_recovered") * Subquery(commission) / Value(Decimal(100)), output_field=_MONEY
        )
    )
    return count


def _lock_active_agencies() -> list[Agency]:
    # Locked in id order so that concurrent placers cannot deadlock each other.
    return list(Agency.objects.select_for_update().filter(active=True).order_by("pk"))


@transaction.atomic
def cases_place(
    *,
    case_ids: list[int],
    now: dt.datetime | None = None,
    actor=None,
    agency_id: int | None = None,
    flag_unplaced: bool = True,
) -> PlacementResult:
    """Place each live, currently unplaced case of ``case_ids`` with the least-loaded active
    agency that has room, never with one it was placed with before (a re-placement goes
    elsewhere). ``agency_id`` picks the agency instead (a manual re-placement).

    Loads count current placements and grow as the batch is shared out, so one batch
    spreads over the agencies instead of filling the emptiest one. Cases that find no
    agency get a ``placement_failed`` event and show in legal.selectors.unplaced_cases().
    """
    now = now or timezone.now()
    result = PlacementResult()
    agencies = _lock_active_agencies()
    if agency_id is not None:
        agencies = [a for a in agencies if a.pk == agency_id]
    candidates = list(
        Case.objects.filter(pk__in=case_ids, status__in=LIVE_STATUSES)
        .exclude(Exists(Placement.objects.filter(case_id=OuterRef("pk"), recalled_at__isnull=True)))
        .order_by("pk")
        .values_list("pk", "outstanding")
    )
    if not candidates:
        return result
    load = dict.fromkeys((a.pk for a in agencies), 0)
    for row in (
        Placement.objects.filter(recalled_at__isnull=True, agency_id__in=list(load))
        .values("agency_id")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        load[row["agency_id"]] = row["n"]
    tried: dict[int, set[int]] = defaultdict(set)
    for case_id, agency in Placement.objects.filter(case_id__in=[c for c, _outstanding in candidates]).values_list(
        "case_id", "agency_id"
    ):
        tried[case_id].add(agency)

    new_placements: list[Placement] = []
    new_events: list[CaseEvent] = []
    actor_id = actor.pk if actor is not None and actor.is_authenticated else None
    for case_id, outstanding in candidates:
        choices = [a for a in agencies if load[a.pk] < a.capacity and a.pk not in tried[case_id]]
        if not choices:
            result.unplaced.append(case_id)
            if flag_unplaced:
                new_events.append(
                    CaseEvent(
                        case_id=case_id,
                        kind=events.PLACEMENT_FAILED,
                        actor_id=actor_id,
                        at=now,
                        detail={"reason": "no_agency_with_capacity"},
                    )
                )
            continue
        # Least-loaded first; ties go to the agency created first, so the choice is stable.
        agency = min(choices, key=lambda a: (load[a.pk], a.pk))
        load[agency.pk] += 1
        result.placed[case_id] = agency.pk
        new_placements.append(
            Placement(case_id=case_id, agency=agency, placed_at=now, placed_by_id=actor_id, balance_placed=outstanding)
        )
        new_events.append(
            CaseEvent(
                case_id=case_id,
                kind=events.PLACED,
                actor_id=actor_id,
                at=now,
                detail={"agency": agency.pk, "agency_name": agency.name, "balance": str(outstanding)},
            )
        )
    Placement.objects.bulk_create(new_placements, batch_size=settings.COLLECTIONS_BATCH_SIZE)
    CaseEvent.objects.bulk_create(new_events, batch_size=settings.COLLECTIONS_BATCH_SIZE)
    return result


@transaction.atomic
def placements_recall(
    *,
    placements: QuerySet[Placement],
    reason: str,
    now: dt.datetime | None = None,
    actor=None,
    note: str = "",
) -> list[Placement]:
    """Recall the current placements among ``placements``: settle what each recovered, stamp
    the recall and write a ``recalled`` event per case. Already recalled ones are skipped,
    so running it twice (or twice at once) recalls each placement once."""
    now = now or timezone.now()
    claimed_ids = list(
        placements.filter(recalled_at__isnull=True).select_for_update(of=("self",)).values_list("pk", flat=True)
    )
    if not claimed_ids:
        return []
    claimed = Placement.objects.filter(pk__in=claimed_ids)
    claimed.update(recalled_at=now, recall_reason=reason, recall_note=note)
    # Recovery counts payments up to the recall time, now stamped on the rows.
    placements_refresh_recovery(placements=claimed, now=now)
    recalled = list(claimed.select_related("agency").order_by("pk"))
    actor_id = actor.pk if actor is not None and actor.is_authenticated else None
    CaseEvent.objects.bulk_create(
        [
            CaseEvent(
                case_id=p.case_id,
                kind=events.RECALLED,
                actor_id=actor_id,
                at=now,
                detail={
                    "agency": p.agency_id,
                    "agency_name": p.agency.name,
                    "reason": reason,
                    "note": note,
                    "recovered": str(p.amount_recovered),
                    "commission": str(p.commission_due),
                },
            )
            for p in recalled
        ],
        batch_size=settings.COLLECTIONS_BATCH_SIZE,
    )
    return recalled


def placement_recall(
    *, placement_id: int, user, note: str = "", replace: bool = False, now: dt.datetime | None = None
) -> tuple[Placement, PlacementResult | None]:
    """A legal staff member or supervisor recalls one placement by hand, and optionally
    places the case again with another agency at once."""
    require_permission(user, RECALL_PLACEMENTS, _("Only legal staff and supervisors may recall placements."))
    now = now or timezone.now()
    with transaction.atomic():
        recalled = placements_recall(
            placements=Placement.objects.filter(pk=placement_id),
            reason=RecallReason.MANUAL,
            now=now,
            actor=user,
            note=note,
        )
        if not recalled:
            if not Placement.objects.filter(pk=placement_id).exists():
                raise Placement.DoesNotExist(f"Placement {placement_id} does not exist.")
            raise ConflictError(_("This placement was already recalled."), field="placement")
        placement = recalled[0]
        result = case_replace(case_id=placement.case_id, user=user, now=now) if replace else None
    return placement, result


@transaction.atomic
def case_replace(
    *, case_id: int, user, agency_id: int | None = None, now: dt.datetime | None = None
) -> PlacementResult:
    """Place a case that has no current placement again: with ``agency_id``, or with the
    least-loaded agency it has not been with before. Refused with a clear message when the
    case is placed already, not open, or no agency can take it."""
    require_permission(user, RECALL_PLACEMENTS, _("Only legal staff and supervisors may place cases."))
    case = Case.objects.select_for_update(of=("self",)).filter(pk=case_id).first()
    if case is None:
        raise Case.DoesNotExist(f"Case {case_id} does not exist.")
    if case.status not in LIVE_STATUSES:
        raise ConflictError(_("Only an open case can be placed with an agency."), field="case")
    if Placement.objects.filter(case_id=case_id, recalled_at__isnull=True).exists():
        raise ConflictError(_("The case is placed already: recall it first."), field="case")
    if agency_id is not None and not Agency.objects.filter(pk=agency_id, active=True).exists():
        raise ConflictError(_("Choose an active agency."), field="agency")
    result = cases_place(case_ids=[case_id], now=now, actor=user, agency_id=agency_id, flag_unplaced=False)
    if not result.placed:
        if agency_id is not None:
            raise ConflictError(
                _("That agency is full or has had this case before: choose another one."), field="agency"
            )
        raise ConflictError(_("No active agency with room that has not had this case before."), field="agency")
    return result


@dataclass
class RecallSummary:
    recalled: int = 0
    replaced: int = 0
    unplaced: int = 0
    refreshed: int = 0


@transaction.atomic
def placements_recall_stale(*, now: dt.datetime | None = None, days: int | None = None) -> RecallSummary:
    """The periodic job: refresh every current placement's recovery, recall those with no
    payment for ``days`` (settings.AGENCY_RECALL_DAYS) and place those cases elsewhere.

    A second run finds nothing stale: the recalled placements are closed and the new ones
    were placed just now.
    """
    now = now or timezone.now()
    days = settings.AGENCY_RECALL_DAYS if days is None else days
    cutoff = now - dt.timedelta(days=days)
    summary = RecallSummary()
    current = Placement.objects.filter(recalled_at__isnull=True)
    summary.refreshed = placements_refresh_recovery(placements=current, now=now)
    recent_payment = Payment.objects.filter(loan__cases__id=OuterRef("case_id"), paid_at__gt=cutoff, paid_at__lte=now)
    stale = current.filter(placed_at__lte=cutoff).exclude(Exists(recent_payment))
    recalled = placements_recall(placements=stale, reason=RecallReason.NO_RECOVERY, now=now)
    summary.recalled = len(recalled)
    if recalled:
        # Only cases still in the agency stage go back out; a case that moved on (litigation)
        # or was resolved stays with the portal.
        still_third_party = list(
            Case.objects.filter(
                pk__in=[p.case_id for p in recalled], status__in=LIVE_STATUSES, stage__code="third_party"
            ).values_list("pk", flat=True)
        )
        result = cases_place(case_ids=still_third_party, now=now)
        summary.replaced = len(result.placed)
        summary.unplaced = len(result.unplaced)
    return summary
