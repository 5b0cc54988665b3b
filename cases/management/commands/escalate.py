"""`manage.py escalate`: one escalation sweep, the same service that beat runs."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from cases.selectors import business_date
from cases.services.sweep import SweepSummary, sweep_run


class Command(BaseCommand):
    help = (
        "Run one escalation sweep: open cases for newly overdue loans, recompute days past due, move cases "
        "forward, resolve cured cases, settle promises and plans, and queue each entered stage's actions."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of",
            type=str,
            default=None,
            help="Business date YYYY-MM-DD (default: today in TIME_ZONE).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would change and change nothing.")
        parser.add_argument("--batch-size", type=int, default=None, help="Loans per transaction.")

    def handle(self, *args, as_of=None, dry_run=False, batch_size=None, **options):
        if as_of:
            try:
                date = dt.date.fromisoformat(as_of)
            except ValueError:
                raise CommandError(f"--as-of {as_of!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-01.") from None
        else:
            date = business_date()
        bar = tqdm(total=0, unit="batch", desc="Sweeping", disable=options.get("verbosity", 1) < 1, leave=False)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            summary = sweep_run(as_of=date, dry_run=dry_run, batch_size=batch_size, progress=progress)
        finally:
            bar.close()
        self.stdout.write(format_summary(summary))


def format_summary(summary: SweepSummary) -> str:
    heading = f"Escalation sweep for {summary.as_of}" + (" (dry run: nothing was saved)" if summary.dry_run else "")
    if summary.skipped:
        return f"{heading}\n  skipped: {summary.skipped}"
    lines = [heading, f"  opened:                 {summary.opened}"]
    if summary.escalated:
        for code, count in sorted(summary.escalated.items()):
            lines.append(f"  escalated to {code + ':':<11} {count}")
    else:
        lines.append("  escalated:              0")
    lines += [
        f"  waiting for approval:   {summary.awaiting_approval}",
        f"  resolved:               {summary.resolved}",
        f"  held:                   {summary.held}",
        f"  holds ended:            {summary.holds_released}",
        f"  promises kept/broken:   {summary.promises_kept}/{summary.promises_broken}",
        f"  plans kept/broken:      {summary.plans_kept}/{summary.plans_broken}",
        f"  repeats due:            {summary.repeats}",
        f"  reassigned:             {summary.reassigned}",
        f"  notifications queued:   {sum(n for a, n in summary.actions.items() if a in ('sms', 'email'))}",
    ]
    if summary.actions:
        lines.append("  actions: " + ", ".join(f"{a}={n}" for a, n in sorted(summary.actions.items())))
    if not summary.changed:
        lines.append("  nothing changed")
    return "\n".join(lines)
