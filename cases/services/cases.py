"""Re-evaluating one loan's case at once.

``case_evaluate_loan`` runs the escalation sweep (``cases.services.sweep``) over a single
loan, so the rules of CONTRACT section 4 live in one place whether they are applied to a
million loans by beat or to one loan right after its payment.
"""

from __future__ import annotations

import datetime as dt

from cases.models import Case, Loan
from cases.selectors import loan_live_case

from .sweep import sweep_batch


def case_evaluate_loan(*, loan: Loan, as_of: dt.date, actor=None, now: dt.datetime | None = None) -> Case | None:
    """Bring the loan's case in line with its days past due on ``as_of``; return the live case.

    Opens a case when DPD reaches the first stage's threshold, moves it forward (never
    back) unless it is held or paused, stops below a stage that requires approval, and
    resolves it when DPD returns to 0. A second call with the same data changes nothing.
    """
    sweep_batch(as_of=as_of, lo=loan.pk, hi=loan.pk, now=now, actor=actor)
    return loan_live_case(loan_id=loan.pk)
