"""Celery tasks of the core. Thin: each calls one service.

Every task may run twice, or twice at once (acks late, redelivery after a crash): the
services they call are written for that.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task

from cases.selectors import business_date
from cases.services.assignment import collectors_rebalance_inactive
from cases.services.idempotency import idempotency_prune as idempotency_prune_service
from cases.services.reporting import dashboard_refresh as reporting_refresh
from cases.services.sweep import sweep_run

logger = logging.getLogger(__name__)


@shared_task(name="cases.tasks.escalation_sweep")
def escalation_sweep(as_of: str | None = None) -> dict:
    """The scheduled sweep (beat: every 15 minutes and just after midnight)."""

    date = dt.date.fromisoformat(as_of) if as_of else business_date()
    summary = sweep_run(as_of=date)
    data = summary.as_dict()
    logger.info("escalation sweep %s: %s", date, {k: v for k, v in data.items() if v})
    return data


@shared_task(name="cases.tasks.rebalance_collectors")
def rebalance_collectors() -> int:
    """Housekeeping: share out the cases of collectors who were made inactive."""
    moved = collectors_rebalance_inactive()
    if moved:
        logger.info("rebalanced %d cases from inactive collectors", moved)
    return moved


@shared_task(name="cases.tasks.idempotency_prune")
def idempotency_prune() -> int:
    """Housekeeping (beat: daily): forget API Idempotency-Keys older than a week."""
    return idempotency_prune_service()


@shared_task(name="cases.tasks.dashboard_refresh")
def dashboard_refresh(as_of: str | None = None, days: int = 2) -> dict:
    """Recount the supervisor dashboard's summary rows (beat: seven minutes after each
    quarter hour, after the sweep). Idempotent: a run over unchanged data writes nothing."""
    result = reporting_refresh(as_of=dt.date.fromisoformat(as_of) if as_of else None, days=days)
    if result.total:
        logger.info("dashboard refresh %s: %s", result.as_of, {k: v for k, v in result.changes.items() if v})
    return result.changes
