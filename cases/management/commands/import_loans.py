"""`manage.py import_loans FILE.csv [--dry-run]`: a lender's CSV of installments, all or nothing."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from cases.services.imports import COLUMNS, ImportRejected, ImportSummary, loans_import


class Command(BaseCommand):
    help = (
        "Import loans from a UTF-8 CSV with one row per installment and the columns "
        + ", ".join(COLUMNS)
        + ". All or nothing: any bad cell rejects the whole file and is listed as 'row N, column C: message'."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file (UTF-8, with or without a BOM).")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check everything, database included, report what would be imported and save nothing.",
        )

    def handle(self, *args, file, dry_run=False, verbosity=1, **options):
        path = Path(file)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise CommandError(
                f"Cannot read {file}: {exc.strerror}. Check the path and the file's permissions."
            ) from None
        # tqdm needs the raw stream: Django's OutputWrapper ends every write with a newline,
        # which would print each refresh of the bar on a line of its own. disable=None turns
        # the bar off when stderr is not a terminal (cron, CI, call_command in tests).
        bar = tqdm(
            total=0,
            unit="B",
            unit_scale=True,
            desc=f"Importing {path.name}",
            file=getattr(self.stderr, "_out", sys.stderr),
            disable=True if verbosity < 1 else None,
            leave=False,
        )

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            with handle:
                summary = loans_import(file=handle, file_name=path.name, dry_run=dry_run, progress=progress)
        except ImportRejected as rejected:
            bar.close()
            report = rejected.summary
            for error in report.errors:
                self.stderr.write(str(error))
            if report.error_count > len(report.errors):
                self.stderr.write(f"... and {report.error_count - len(report.errors)} more")
            raise CommandError(
                f"{path.name} was rejected with {report.error_count} error(s) and nothing was imported. "
                "Fix the rows listed above and import the whole file again."
            ) from None
        bar.close()
        self.stdout.write(format_summary(summary))


def format_summary(summary: ImportSummary) -> str:
    if summary.dry_run:
        heading = f"Dry run of {summary.file_name}: the file is valid and nothing was saved. It would import:"
    else:
        heading = f"Imported {summary.file_name} (import run #{summary.import_run_id}):"
    return "\n".join(
        [
            heading,
            f"  rows:                 {summary.rows}",
            f"  loans:                {summary.loans}",
            f"  installments:         {summary.installments}",
            f"  new borrowers:        {summary.borrowers_created}",
            f"  updated borrowers:    {summary.borrowers_updated}",
            f"  unchanged borrowers:  {summary.borrowers_unchanged}",
            f"  seconds:              {summary.seconds:.1f}",
            f"  sha256:               {summary.sha256}",
        ]
    )
