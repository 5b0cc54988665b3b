"""Reads of legal: fixed query counts whatever the number of rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DecimalField, Exists, F, Min, OuterRef, Prefetch, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from cases.models import Case, CaseEvent, Payment
from cases.models.cases import LIVE_STATUSES
from cases.models.fields import MONEY_DIGITS, MONEY_PLACES, ZERO

from .models import Agency, AgencyMember, Hearing, LegalDocument, LegalMatter, MatterStatus, Placement
from .services.placements import recovered_subquery

_MONEY = DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)


def unplaced_cases() -> QuerySet[Case]:
    """Open cases in the agency stage that no agency holds: none had room when they entered,
    or they were recalled and not placed again. The supervisor dashboard lists them."""
    current = Placement.objects.filter(case_id=OuterRef("pk"), recalled_at__isnull=True)
    return (
        Case.objects.filter(status__in=LIVE_STATUSES, stage__code="third_party")
        .exclude(Exists(current))
        .select_related("loan__borrower", "stage")
        .order_by("-days_past_due", "pk")
    )


def user_agency(user) -> Agency | None:
    member = AgencyMember.objects.select_related("agency").filter(user_id=user.pk).first()
    return member.agency if member else None


def placements_list(*, current_only: bool = False, now: dt.datetime | None = None) -> QuerySet[Placement]:
    """Placements with what each has recovered so far (live from the payments), newest first."""
    qs = Placement.objects.select_related("agency", "case__loan__borrower").annotate(
        recovered_now=recovered_subquery(now or timezone.now())
    )
    if current_only:
        qs = qs.filter(recalled_at__isnull=True)
    return qs.order_by("-placed_at", "-pk")


@dataclass(frozen=True)
class AgencyPerformance:
    agency: Agency
    placed: int
    current: int
    balance_placed: Decimal
    recovered: Decimal
    commission: Decimal

    @property
    def recovery_rate(self) -> Decimal | None:
        """Recovered as a share of the balances placed (0-100 %), None before any placement."""
        if not self.balance_placed:
            return None
        return (self.recovered * 100 / self.balance_placed).quantize(Decimal("0.1"))


def agency_performance(*, now: dt.datetime | None = None) -> list[AgencyPerformance]:
    """Per agency: placements, balances placed, recovered (payments while placed) and the
    commission on it. Two queries: the agencies with their placement counts and sums, and
    the payments made during placements, summed per agency."""
    now = now or timezone.now()
    agencies = list(
        Agency.objects.annotate(
            n_placed=Count("placements"),
            n_current=Count("placements", filter=Q(placements__recalled_at__isnull=True)),
            balance=Coalesce(Sum("placements__balance_placed"), Value(ZERO), output_field=_MONEY),
        ).order_by("name")
    )
    # A payment counts for the placement whose window holds it (at most one per case at a time).
    # A payment counts for the placement whose window holds it (at most one per case at a
    # time). One filter() call, so every condition applies to the same placement row.
    in_window = Q(loan__cases__placements__placed_at__lte=F("paid_at")) & (
        Q(loan__cases__placements__recalled_at__isnull=True) | Q(loan__cases__placements__recalled_at__gte=F("paid_at"))
    )
    recovered = dict(
        Payment.objects.filter(in_window, paid_at__lte=now)
        .order_by()
        .values("loan__cases__placements__agency_id")
        .annotate(total=Sum("amount"))
        .values_list("loan__cases__placements__agency_id", "total")
    )
    rows = []
    for agency in agencies:
        total = recovered.get(agency.pk, ZERO) or ZERO
        rows.append(
            AgencyPerformance(
                agency=agency,
                placed=agency.n_placed,
                current=agency.n_current,
                balance_placed=agency.balance,
                recovered=total,
                commission=(total * agency.commission_percent / 100).quantize(Decimal("0.01")),
            )
        )
    return rows


def agency_performance_stored() -> list[AgencyPerformance]:
    """The same figures from the amounts stored on the placements (settled at each recall and
    refreshed daily by the recall task): one query, for the dashboard panel."""
    agencies = Agency.objects.annotate(
        n_placed=Count("placements"),
        n_current=Count("placements", filter=Q(placements__recalled_at__isnull=True)),
        balance=Coalesce(Sum("placements__balance_placed"), Value(ZERO), output_field=_MONEY),
        recovered=Coalesce(Sum("placements__amount_recovered"), Value(ZERO), output_field=_MONEY),
        commission=Coalesce(Sum("placements__commission_due"), Value(ZERO), output_field=_MONEY),
    ).order_by("name")
    return [
        AgencyPerformance(
            agency=a,
            placed=a.n_placed,
            current=a.n_current,
            balance_placed=a.balance,
            recovered=a.recovered,
            commission=a.commission,
        )
        for a in agencies
    ]


def legal_matters_list(*, status: str | None = None, now: dt.datetime | None = None) -> QuerySet[LegalMatter]:
    """Matters with their borrower and next hearing, newest first: one query."""
    now = now or timezone.now()
    qs = LegalMatter.objects.select_related("case__loan__borrower").annotate(
        next_hearing=Min("hearings__at", filter=Q(hearings__at__gte=now))
    )
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-opened_at", "-pk")


def legal_matter_detail(*, matter_id: int) -> LegalMatter | None:
    """One matter with its hearings and documents (three queries)."""
    return (
        LegalMatter.objects.select_related("case__loan__borrower", "case__stage", "opened_by")
        .prefetch_related(
            Prefetch("hearings", queryset=Hearing.objects.order_by("at")),
            Prefetch("documents", queryset=LegalDocument.objects.select_related("created_by").order_by("created_at")),
        )
        .filter(pk=matter_id)
        .first()
    )


def case_timeline(*, case_id: int) -> QuerySet[CaseEvent]:
    return CaseEvent.objects.filter(case_id=case_id).select_related("actor").order_by("at", "pk")


def upcoming_hearings(*, now: dt.datetime | None = None, days: int = 60) -> QuerySet[Hearing]:
    """Hearings from now on for the next ``days`` days, of matters still in progress."""
    now = now or timezone.now()
    return (
        Hearing.objects.filter(at__gte=now, at__lt=now + dt.timedelta(days=days))
        .exclude(matter__status=MatterStatus.CLOSED)
        .select_related("matter__case__loan__borrower")
        .order_by("at", "pk")
    )


def legal_document_get(*, document_id: int) -> LegalDocument | None:
    return LegalDocument.objects.select_related("matter").filter(pk=document_id).first()
