"""The limitation period (诉讼时效): a time-barred debt cannot be taken to court.

Registered with ``cases`` as a guard on entering the ``litigation`` stage, so the core's
approval service refuses a time-barred case with the reason, without importing legal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from cases.models import Case


@dataclass(frozen=True)
class Limitation:
    # The later of the last payment's date and the last installment's due date.
    runs_from: dt.date | None
    expires_on: dt.date | None
    years: int
    time_barred: bool


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year + years, day=28)


def case_limitation(*, case_id: int, as_of: dt.date) -> Limitation:
    """Where the case's limitation period stands on ``as_of``: one query."""
    years = settings.LIMITATION_PERIOD_YEARS
    row = Case.objects.filter(pk=case_id).aggregate(
        last_due=Max("loan__installments__due_date"), last_paid_at=Max("loan__payments__paid_at")
    )
    dates = [row["last_due"]]
    if row["last_paid_at"] is not None:
        dates.append(timezone.localdate(row["last_paid_at"]))
    dates = [d for d in dates if d is not None]
    if not dates:
        return Limitation(runs_from=None, expires_on=None, years=years, time_barred=False)
    runs_from = max(dates)
    expires_on = _add_years(runs_from, years)
    return Limitation(runs_from=runs_from, expires_on=expires_on, years=years, time_barred=as_of >= expires_on)


def litigation_guard(case: Case, *, as_of: dt.date) -> None:
    """Stage guard for ``litigation``: raise ValidationError saying why a case is time-barred."""
    limitation = case_limitation(case_id=case.pk, as_of=as_of)
    if limitation.time_barred:
        raise ValidationError(
            {
                "stage": _(
                    "Time-barred: the %(years)s-year limitation period ran from %(start)s (the later of the "
                    "last payment and the last due date) and expired on %(end)s, so the case cannot enter "
                    "litigation."
                )
                % {"years": limitation.years, "start": limitation.runs_from, "end": limitation.expires_on}
            },
            code="time_barred",
        )
