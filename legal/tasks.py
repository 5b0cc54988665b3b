"""Periodic legal jobs (thin: they call services). Beat's entry is seeded by a migration."""

from celery import shared_task

from .services.placements import placements_recall_stale


@shared_task(name="legal.tasks.recall_stale_placements")
def recall_stale_placements() -> dict[str, int]:
    summary = placements_recall_stale()
    return {
        "recalled": summary.recalled,
        "replaced": summary.replaced,
        "unplaced": summary.unplaced,
        "refreshed": summary.refreshed,
    }
