"""`import_loans`: a lender's CSV, one row per installment, into borrowers, loans and schedules.

All or nothing: the whole file is one transaction. Every bad cell is reported as
``row N, column C: message`` (N is the file's line number, the header being row 1) and on
any error the transaction is rolled back, so a half-imported file never exists.

Memory stays flat however large the file is:

- the file is read line by line (``csv.reader`` over decoded lines), hashed on the way;
- a loan's rows must be contiguous, so a loan is complete when the loan id changes;
- complete loans wait in a batch until ``COLLECTIONS_BATCH_SIZE`` rows have gathered, and
  the batch is written with a fixed number of statements (two lookups and three
  ``bulk_create``), then forgotten.

Nothing about earlier batches is kept in Python. Questions about them ("has this loan
appeared before in the file?", "did this borrower have other details earlier in the
file?") go to the database instead: the ImportRun row is created first and every borrower
and loan this run writes carries ``import_run`` = this run, so one lookup per batch tells
a row that existed before the import from one written earlier in this same file.

Opening cases is not the import's job: the escalation sweep opens them for overdue loans.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cases import validators as v
from cases.models import Borrower, ImportRun, Installment, Loan

COLUMNS = (
    "loan_external_id",
    "borrower_external_id",
    "borrower_name",
    "phone",
    "email",
    "language",
    "timezone",
    "principal",
    "currency",
    "disbursed_on",
    "due_date",
    "amount",
)
COLUMN_ORDER = {name: index for index, name in enumerate(COLUMNS)}
# Every row of a loan repeats these; they must agree across the loan's rows.
LOAN_COLUMNS = ("borrower_external_id", "principal", "currency", "disbursed_on")
# Column -> Borrower field. A borrower's rows must agree on these across the whole file.
BORROWER_COLUMNS = {
    "borrower_name": "name",
    "phone": "phone",
    "email": "email",
    "language": "language",
    "timezone": "timezone",
}
BORROWER_FIELD_COLUMNS = {name: column for column, name in BORROWER_COLUMNS.items()}
REPEATED_COLUMNS = (*LOAN_COLUMNS, *BORROWER_COLUMNS)

# The same rules (and defaults for an empty language or time zone) as the API's parse_borrower and loan_create.
PARSERS: dict[str, Callable[[str], Any]] = {
    "loan_external_id": lambda raw: v.parse_text(raw, max_length=64),
    "borrower_external_id": lambda raw: v.parse_text(raw, max_length=64),
    "borrower_name": lambda raw: v.parse_text(raw, max_length=200),
    "phone": v.parse_phone,
    # The column holds 254 characters; the email rule alone would let a longer address through.
    "email": lambda raw: v.parse_email(v.parse_text(raw, max_length=254, required=False)),
    "language": lambda raw: v.parse_language(raw.strip() or "zh-hans"),
    "timezone": lambda raw: v.parse_time_zone(raw.strip() or "Asia/Shanghai"),
    "principal": v.parse_amount,
    "currency": v.parse_currency,
    "disbursed_on": v.parse_date,
    "due_date": v.parse_date,
    "amount": v.parse_amount,
}

MAX_REPORTED_ERRORS = 200
# Any constant shared by every import process; pg_advisory_xact_lock takes a 64-bit key.
IMPORT_LOCK_KEY = 0x1A_F0_0C5
PROGRESS_EVERY_BYTES = 256 * 1024
HEADER_HINT = "the header must name exactly these columns: " + ", ".join(COLUMNS)
_BAD = object()  # a cell that failed to parse (None and "" are legitimate values)


@dataclass(frozen=True)
class RowError:
    row: int | None  # the file's line number; None for a problem with the file as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row}"
        return f"{where}, column {self.column}: {self.message}" if self.column else f"{where}: {self.message}"

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.row or 0, COLUMN_ORDER.get(self.column or "", -1))


class ErrorList:
    """Every error is counted; only the first ``cap`` by row are kept, so a file of bad rows
    costs no more memory than a good one."""

    def __init__(self, cap: int = MAX_REPORTED_ERRORS) -> None:
        self.cap = cap
        self.count = 0
        self._kept: list[RowError] = []

    def add(self, row: int | None, column: str | None, message: str) -> None:
        self.count += 1
        self._kept.append(RowError(row, column, message))
        # Errors arrive almost in row order, but batch checks report earlier rows late:
        # sorting before trimming keeps the lowest rows whatever the arrival order.
        if len(self._kept) >= 2 * self.cap:
            self._kept.sort(key=lambda error: error.sort_key)
            del self._kept[self.cap :]

    def first(self) -> list[RowError]:
        return sorted(self._kept, key=lambda error: error.sort_key)[: self.cap]

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass
class ImportSummary:
    file_name: str
    dry_run: bool
    sha256: str = ""
    rows: int = 0
    loans: int = 0
    installments: int = 0
    borrowers_created: int = 0
    borrowers_updated: int = 0
    borrowers_unchanged: int = 0
    seconds: float = 0.0
    import_run_id: int | None = None
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0


class ImportRejected(Exception):
    """The file had errors and nothing was saved; ``summary.errors`` lists the first of them."""

    def __init__(self, summary: ImportSummary) -> None:
        super().__init__(f"{summary.error_count} error(s) in {summary.file_name}; nothing was imported.")
        self.summary = summary


@dataclass
class _LoanRows:
    """One loan's contiguous rows: the first row's loan and borrower cells, then the schedule."""

    external_id: str
    row: int
    raw: dict[str, str]
    values: dict[str, Any]
    valid: bool
    rows: int = 0
    schedule: list[tuple[dt.date, Decimal]] = field(default_factory=list)
    last_due: dt.date | None = None

    def borrower_details(self) -> dict[str, Any] | None:
        if "borrower_external_id" not in self.values or any(c not in self.values for c in BORROWER_COLUMNS):
            return None
        return {name: self.values[column] for column, name in BORROWER_COLUMNS.items()}


def _show(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value) if value != "" else '""'


def _file_size(file: IO[bytes]) -> int:
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pass
    try:
        position = file.tell()
        size = file.seek(0, os.SEEK_END)
        file.seek(position)
        return size - position
    except (AttributeError, OSError, ValueError):
        return 0


class _NotUtf8(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _Importer:
    def __init__(self, *, run: ImportRun, summary: ImportSummary, errors: ErrorList, batch_size: int) -> None:
        self.run = run
        self.summary = summary
        self.errors = errors
        self.batch_size = batch_size
        self.sha256 = hashlib.sha256()
        self.current: _LoanRows | None = None
        self.batch: list[_LoanRows] = []
        self.batch_rows = 0
        self.batch_loans: dict[str, int] = {}  # loan id -> first row, this batch only
        self.batch_borrowers: dict[str, tuple[int, dict[str, Any]]] = {}  # borrower id -> (first row, details)

    # --- reading ------------------------------------------------------------------------

    def lines(self, file: IO[bytes], progress: Callable[[int, int], None] | None) -> Iterator[str]:
        """The file's lines as text, hashed and counted as they pass.

        Decoding line by line (rather than through a TextIOWrapper) puts a decoding error on
        the line that holds the bad bytes instead of somewhere in an 8 KB read-ahead.
        """
        total = _file_size(file)
        done = reported = 0
        if progress is not None:
            progress(0, total)
        for number, line in enumerate(file, start=1):
            self.sha256.update(line)
            done += len(line)
            if progress is not None and done - reported >= PROGRESS_EVERY_BYTES:
                progress(done, total)
                reported = done
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise _NotUtf8(number) from None
            yield text.removeprefix("\ufeff") if number == 1 else text
        if progress is not None:
            progress(done, max(total, done))

    def read(self, lines: Iterable[str]) -> None:
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
            if header is None:
                self.errors.add(1, None, f"the file is empty; {HEADER_HINT}.")
                return
            positions = self.read_header(header)
            if positions is None:
                return
            width = len(header)
            last_line = reader.line_num
            for cells in reader:
                # A row's number is the line it starts on; a quoted cell may span lines.
                number, last_line = last_line + 1, reader.line_num
                if not any(cell.strip() for cell in cells):
                    continue  # blank lines (a trailing newline, a spreadsheet's empty rows)
                self.summary.rows += 1
                if len(cells) != width:
                    self.errors.add(
                        number,
                        None,
                        f"the row has {len(cells)} cells but the header has {width}; check for a missing or extra "
                        'comma, and put cells that contain a comma in double quotes ("...").',
                    )
                    continue
                self.add_row(number, {column: cells[index] for column, index in positions.items()})
        except _NotUtf8 as exc:
            self.errors.add(
                exc.line, None, "this line is not UTF-8 text; save the file as CSV UTF-8 and import it again."
            )
        except csv.Error as exc:
            self.errors.add(
                reader.line_num, None, f"the CSV cannot be read here ({exc}); check the quotes on this line."
            )
        self.close_loan()
        self.flush()

    def read_header(self, header: list[str]) -> dict[str, int] | None:
        positions: dict[str, int] = {}
        for index, cell in enumerate(header):
            name = cell.strip().lower()
            if name not in COLUMN_ORDER:
                label = name or f"#{index + 1}"
                self.errors.add(1, label, f"unknown column; remove it or fix its name: {HEADER_HINT}.")
            elif name in positions:
                self.errors.add(1, name, f"this column appears twice; keep one: {HEADER_HINT}.")
            else:
                positions[name] = index
        for name in COLUMNS:
            if name not in positions:
                self.errors.add(1, name, f"missing column; add it to the header: {HEADER_HINT}.")
        return None if len(positions) != len(COLUMNS) or self.errors else positions

    # --- validating ---------------------------------------------------------------------

    def parse(self, row: int, column: str, raw: str) -> Any:
        try:
            return PARSERS[column](raw)
        except ValidationError as exc:
            for message in exc.messages:
                self.errors.add(row, column, message)
            return _BAD

    def add_row(self, row: int, cells: dict[str, str]) -> None:
        loan = self.current
        # A row whose loan id is bad starts a group of its own, so each such row gets its error.
        if (
            loan is None
            or "loan_external_id" not in loan.values
            or cells["loan_external_id"].strip() != loan.external_id
        ):
            self.close_loan()
            loan = self.current = self.open_loan(row, cells)
        else:
            self.check_repeated_cells(loan, row, cells)
        loan.rows += 1
        due = self.parse(row, "due_date", cells["due_date"])
        amount = self.parse(row, "amount", cells["amount"])
        if due is _BAD or amount is _BAD:
            loan.valid = False
        if due is not _BAD:
            disbursed = loan.values.get("disbursed_on")
            if disbursed is not None and due < disbursed:
                loan.valid = False
                self.errors.add(
                    row,
                    "due_date",
                    f"{due} is before the disbursement date {disbursed}: an installment cannot fall due before the "
                    "loan is paid out; check both dates.",
                )
            if loan.last_due is not None and due <= loan.last_due:
                loan.valid = False
                self.errors.add(
                    row,
                    "due_date",
                    f"{due} is not after the previous installment's due date {loan.last_due}: list a loan's "
                    "installments in date order, one per date.",
                )
            loan.last_due = due
        if loan.valid:
            loan.schedule.append((due, amount))
        else:
            loan.schedule.clear()  # it will not be written; do not hold on to it

    def open_loan(self, row: int, cells: dict[str, str]) -> _LoanRows:
        values: dict[str, Any] = {}
        for column in ("loan_external_id", *REPEATED_COLUMNS):
            value = self.parse(row, column, cells[column])
            if value is not _BAD:
                values[column] = value
        loan = _LoanRows(
            external_id=cells["loan_external_id"].strip(),
            row=row,
            raw={column: cells[column] for column in REPEATED_COLUMNS},
            values=values,
            valid=len(values) == 1 + len(REPEATED_COLUMNS),
        )
        earlier = self.batch_loans.get(loan.external_id)
        if earlier is not None and "loan_external_id" in values:
            loan.valid = False
            self.errors.add(
                row,
                "loan_external_id",
                f"loan {loan.external_id} already appeared at row {earlier}; keep each loan's rows together "
                "(sort the file by loan_external_id).",
            )
        return loan

    def check_repeated_cells(self, loan: _LoanRows, row: int, cells: dict[str, str]) -> None:
        for column in REPEATED_COLUMNS:
            raw = cells[column]
            if raw == loan.raw[column]:
                continue  # the common case: the cell is repeated verbatim, no need to parse it again
            value = self.parse(row, column, raw)
            if value is _BAD:
                loan.valid = False
            elif column in loan.values and value != loan.values[column]:
                loan.valid = False
                self.errors.add(
                    row,
                    column,
                    f"{_show(value)} differs from {_show(loan.values[column])} on row {loan.row} of loan "
                    f"{loan.external_id}; repeat the same loan and borrower details on every row of a loan.",
                )

    def close_loan(self) -> None:
        loan, self.current = self.current, None
        if loan is None:
            return
        if "loan_external_id" in loan.values:
            self.batch_loans.setdefault(loan.external_id, loan.row)
        details = loan.borrower_details()
        if details is not None:
            borrower_id = loan.values["borrower_external_id"]
            seen = self.batch_borrowers.get(borrower_id)
            if seen is None:
                self.batch_borrowers[borrower_id] = (loan.row, details)
            else:
                first_row, first_details = seen
                for column, name in BORROWER_COLUMNS.items():
                    if details[name] != first_details[name]:
                        loan.valid = False
                        self.errors.add(
                            loan.row,
                            column,
                            f"{_show(details[name])} differs from {_show(first_details[name])} given for borrower "
                            f"{borrower_id} on row {first_row}; give a borrower the same details on every row.",
                        )
        self.batch.append(loan)
        self.batch_rows += loan.rows
        if self.batch_rows >= self.batch_size:
            self.flush()

    # --- writing ------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the batch with a fixed number of statements, whatever its size.

        One INSERT per table: on PostgreSQL Django sends a bulk insert as one array per
        column (INSERT ... SELECT * FROM UNNEST), so no bind-parameter limit splits it.
        """
        if not self.batch:
            return
        self.check_loans_are_new()
        borrower_pks = self.write_borrowers()
        loans = [
            (
                rows,
                Loan(
                    external_id=rows.external_id,
                    borrower_id=borrower_pks[rows.values["borrower_external_id"]],
                    principal=rows.values["principal"],
                    currency=rows.values["currency"],
                    disbursed_on=rows.values["disbursed_on"],
                    import_run_id=self.run.pk,
                ),
            )
            for rows in self.batch
            if rows.valid and rows.values["borrower_external_id"] in borrower_pks
        ]
        Loan.objects.bulk_create([loan for _, loan in loans])
        installments = [
            Installment(loan_id=loan.pk, sequence=number, due_date=due, amount=amount)
            for rows, loan in loans
            for number, (due, amount) in enumerate(rows.schedule, start=1)
        ]
        Installment.objects.bulk_create(installments)
        self.summary.loans += len(loans)
        self.summary.installments += len(installments)
        self.batch, self.batch_rows, self.batch_loans, self.batch_borrowers = [], 0, {}, {}

    def check_loans_are_new(self) -> None:
        ids = [rows.external_id for rows in self.batch if "loan_external_id" in rows.values]
        found = dict(Loan.objects.filter(external_id__in=ids).values_list("external_id", "import_run_id"))
        for rows in self.batch:
            if rows.external_id not in found:
                continue
            rows.valid = False
            if found[rows.external_id] == self.run.pk:
                message = (
                    f"loan {rows.external_id} already appeared at an earlier row; keep each loan's rows together "
                    "(sort the file by loan_external_id)."
                )
            else:
                message = (
                    f"loan {rows.external_id} already exists; remove its rows from the file (an import only creates "
                    "new loans)."
                )
            self.errors.add(rows.row, "loan_external_id", message)

    def write_borrowers(self) -> dict[str, int]:
        """Create new borrowers and bring known ones up to date, as borrower_upsert does.

        Returns external id -> pk for every borrower the batch's loans may point to. Opt-outs
        and consent are never touched: only the borrower changes those.
        """
        fields = list(BORROWER_COLUMNS.values())
        existing = {
            borrower.external_id: borrower
            for borrower in Borrower.objects.filter(external_id__in=list(self.batch_borrowers)).only(
                "id", "external_id", "import_run_id", *fields
            )
        }
        now = timezone.now()
        created: list[Borrower] = []
        updated: list[Borrower] = []
        unchanged: list[int] = []
        pks: dict[str, int] = {}
        for external_id, (row, details) in self.batch_borrowers.items():
            borrower = existing.get(external_id)
            if borrower is None:
                created.append(Borrower(external_id=external_id, import_run_id=self.run.pk, **details))
                continue
            pks[external_id] = borrower.pk
            changed = [name for name, value in details.items() if getattr(borrower, name) != value]
            if borrower.import_run_id == self.run.pk:
                # Written earlier in this file: the details must be the same as they were then.
                for name in changed:
                    self.errors.add(
                        row,
                        BORROWER_FIELD_COLUMNS[name],
                        f"{_show(details[name])} differs from {_show(getattr(borrower, name))} given for borrower "
                        f"{external_id} earlier in the file; give a borrower the same details on every row.",
                    )
            elif changed:
                for name in changed:
                    setattr(borrower, name, details[name])
                borrower.import_run = self.run
                borrower.updated_at = now  # bulk_update does not apply auto_now
                updated.append(borrower)
            else:
                # Marked all the same, so a later batch knows it met this borrower earlier in the file.
                unchanged.append(borrower.pk)
        Borrower.objects.bulk_create(created)
        if updated:
            # Small chunks: bulk_update's CASE WHEN grows with the chunk on both sides of the wire.
            Borrower.objects.bulk_update(updated, [*fields, "import_run", "updated_at"], batch_size=500)
        if unchanged:
            Borrower.objects.filter(pk__in=unchanged).update(import_run=self.run)
        pks.update((borrower.external_id, borrower.pk) for borrower in created)
        self.summary.borrowers_created += len(created)
        self.summary.borrowers_updated += len(updated)
        self.summary.borrowers_unchanged += len(unchanged)
        return pks


def loans_import(
    *,
    file: IO[bytes],
    file_name: str,
    dry_run: bool,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import a CSV of installments (CONTRACT section 3) in one transaction.

    ``file`` is opened in binary mode: it is decoded as UTF-8 (with or without a BOM) and
    hashed as it is read. ``progress(bytes_read, total_bytes)`` is called as it goes.
    Raises ImportRejected, with every error counted and the first ones listed, when any
    cell is bad; the database is then unchanged. With ``dry_run`` everything is validated
    and written as usual, database checks included, and then rolled back.
    """
    started = time.monotonic()
    summary = ImportSummary(file_name=file_name, dry_run=dry_run)
    errors = ErrorList()
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Two imports at once would each miss the other's uncommitted loans and borrowers
                # and then collide on the unique keys: let them run one after the other.
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [IMPORT_LOCK_KEY])
            run = ImportRun.objects.create(file_name=file_name[:255], sha256="")
            importer = _Importer(
                run=run,
                summary=summary,
                errors=errors,
                batch_size=max(1, settings.COLLECTIONS_BATCH_SIZE),
            )
            importer.read(importer.lines(file, progress))
            summary.sha256 = importer.sha256.hexdigest()
            run.sha256 = summary.sha256
            run.rows = summary.rows
            run.loans = summary.loans
            run.borrowers = summary.borrowers_created
            run.finished_at = timezone.now()
            run.save(update_fields=["sha256", "rows", "loans", "borrowers", "finished_at"])
            if errors or dry_run:
                transaction.set_rollback(True)
            else:
                summary.import_run_id = run.pk
    except IntegrityError:
        # Only a writer outside imports (the API creating the same loan or borrower at this
        # very moment) can get here: imports themselves take the lock above.
        errors.add(
            None,
            None,
            "a loan or borrower in this file was created by someone else while the import ran; nothing was "
            "imported, run the import again.",
        )
    summary.seconds = time.monotonic() - started
    if errors:
        summary.errors = errors.first()
        summary.error_count = errors.count
        raise ImportRejected(summary)
    return summary
