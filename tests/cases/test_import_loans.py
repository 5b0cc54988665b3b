"""`manage.py import_loans`: a good file, every rejection rule, --dry-run, borrowers updated, and query counts."""

import hashlib
import threading
import time
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cases.models import Borrower, ImportRun, Installment, Loan
from cases.services.imports import COLUMNS, ImportRejected, ImportSummary, loans_import
from tests.factories import BorrowerFactory, LoanFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"
HEADER = ",".join(COLUMNS)
DEFAULTS = {
    "loan_external_id": "LN-1",
    "borrower_external_id": "BR-1",
    "borrower_name": "王芳",
    "phone": "+8613812345678",
    "email": "wangfang@example.com",
    "language": "zh-hans",
    "timezone": "Asia/Shanghai",
    "principal": "3000.00",
    "currency": "CNY",
    "disbursed_on": "2026-01-05",
    "due_date": "2026-02-05",
    "amount": "1000.00",
}


def line(**cells) -> str:
    values = {**DEFAULTS, **cells}
    return ",".join(f'"{values[c]}"' if "," in values[c] else values[c] for c in COLUMNS)


def write_csv(tmp_path, *lines, header=HEADER, name="loans.csv", bom=False) -> Path:
    path = tmp_path / name
    text = "\n".join([header, *lines]) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def run(path, *args) -> str:
    out = StringIO()
    call_command("import_loans", str(path), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def rejected(path, *args) -> list[str]:
    """The command's error lines; it must fail and say nothing was imported."""
    err = StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_loans", str(path), *args, stdout=StringIO(), stderr=err)
    return err.getvalue().splitlines()


def counts() -> tuple[int, int, int, int]:
    return (Borrower.objects.count(), Loan.objects.count(), Installment.objects.count(), ImportRun.objects.count())


def test_it_imports_loans_borrowers_and_installments():
    path = DATA / "loans_good.csv"

    output = run(path)

    assert "rows:                 6" in output
    assert "loans:                3" in output
    assert "new borrowers:        2" in output
    wang = Borrower.objects.get(external_id="BR-1")
    assert wang.name == "王芳"
    assert wang.phone == "+8613812345678"
    assert wang.language == "zh-hans"
    smith = Borrower.objects.get(external_id="BR-2")
    assert (smith.name, smith.timezone, smith.language) == ("Smith, John", "America/Los_Angeles", "en")
    loan = Loan.objects.get(external_id="LN-1001")
    assert loan.borrower == wang
    assert loan.principal == Decimal("3000.00")
    assert loan.currency == "CNY"
    assert list(loan.installments.values_list("sequence", "due_date", "amount")) == [
        (1, loan.disbursed_on.replace(month=2), Decimal("1050.00")),
        (2, loan.disbursed_on.replace(month=3), Decimal("1050.00")),
        (3, loan.disbursed_on.replace(month=4), Decimal("1050.01")),
    ]
    assert Loan.objects.get(external_id="LN-1003").borrower == wang
    assert Installment.objects.get(loan__external_id="LN-1002", sequence=2).amount == Decimal("600.25")
    run_row = ImportRun.objects.get()
    assert run_row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (run_row.file_name, run_row.rows, run_row.loans, run_row.borrowers) == ("loans_good.csv", 6, 3, 2)
    assert run_row.finished_at is not None
    assert set(Loan.objects.values_list("import_run", flat=True)) == {run_row.pk}
    assert set(Borrower.objects.values_list("import_run", flat=True)) == {run_row.pk}


def test_it_opens_no_cases():
    run(DATA / "loans_good.csv")
    assert not Loan.objects.filter(cases__isnull=False).exists()


def test_it_rejects_the_whole_file_and_lists_every_bad_cell_by_row(tmp_path):
    BorrowerFactory()
    before = counts()
    path = write_csv(
        tmp_path,
        line(loan_external_id="LN-1", due_date="2026-02-05"),
        line(loan_external_id="LN-1", due_date="2026-03-05"),
        line(loan_external_id="LN-2", phone="12345", currency="RMB"),
        line(loan_external_id="LN-3", borrower_external_id="BR-3"),
        line(loan_external_id="LN-4", borrower_external_id="BR-4", amount="-5.00", timezone="Mars/Olympus"),
    )

    lines = rejected(path)

    assert lines == [
        "row 4, column phone: 12345 is not in E.164 form: start with + and the country code, e.g. +8613812345678.",
        "row 4, column currency: RMB is not an ISO 4217 currency code; use three letters such as CNY or USD.",
        "row 6, column timezone: Mars/Olympus is not an IANA time zone; use a name such as Asia/Shanghai or "
        "America/Los_Angeles.",
        "row 6, column amount: -5.00 is negative; amounts must be zero or more.",
    ]
    assert counts() == before


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        pytest.param(
            {"phone": "+861234"},
            "row 2, column phone: +861234 is not a valid phone number for its country code.",
            id="bad-phone",
        ),
        pytest.param(
            {"timezone": "China/Beijing"},
            "row 2, column timezone: China/Beijing is not an IANA time zone; use a name such as Asia/Shanghai or "
            "America/Los_Angeles.",
            id="unknown-time-zone",
        ),
        pytest.param(
            {"currency": "RMB"},
            "row 2, column currency: RMB is not an ISO 4217 currency code; use three letters such as CNY or USD.",
            id="unknown-currency",
        ),
        pytest.param(
            {"amount": "-1000.00"},
            "row 2, column amount: -1000.00 is negative; amounts must be zero or more.",
            id="negative-amount",
        ),
        pytest.param(
            {"principal": "3,000.00"},
            "row 2, column principal: 3,000.00 is not a number; write amounts like 1200.50.",
            id="thousands-separator",
        ),
        pytest.param(
            {"due_date": "2026-02-30"},
            "row 2, column due_date: 2026-02-30 is not a date; use YYYY-MM-DD.",
            id="bad-date",
        ),
        pytest.param(
            {"disbursed_on": "05/01/2026"},
            "row 2, column disbursed_on: 05/01/2026 is not a date; use YYYY-MM-DD.",
            id="bad-date-format",
        ),
        pytest.param(
            {"language": "fr"},
            "row 2, column language: fr is not a supported language; use en or zh-hans.",
            id="unknown-language",
        ),
        pytest.param(
            {"email": "wangfang.example.com"},
            "row 2, column email: Enter a valid email address.",
            id="bad-email",
        ),
        pytest.param(
            {"email": "x" * 250 + "@example.com"},
            "row 2, column email: At most 254 characters (this has 262).",
            id="email-too-long",
        ),
        pytest.param(
            {"borrower_name": ""},
            "row 2, column borrower_name: This value is required.",
            id="missing-name",
        ),
        pytest.param(
            {"due_date": "2026-01-01"},
            "row 2, column due_date: 2026-01-01 is before the disbursement date 2026-01-05: an installment cannot "
            "fall due before the loan is paid out; check both dates.",
            id="due-before-disbursement",
        ),
    ],
)
def test_it_rejects_a_bad_cell(tmp_path, cells, expected):
    path = write_csv(tmp_path, line(**cells), line(loan_external_id="LN-2"))

    assert rejected(path) == [expected]
    assert counts() == (0, 0, 0, 0)


def test_it_names_a_missing_header_column(tmp_path):
    header = ",".join(c for c in COLUMNS if c != "currency")
    path = write_csv(tmp_path, header=header)

    lines = rejected(path)

    assert len(lines) == 1
    assert lines[0].startswith("row 1, column currency: missing column; add it to the header: the header must name")


def test_it_names_an_unknown_header_column(tmp_path):
    path = write_csv(tmp_path, line() + ",x", header=HEADER + ",product")

    lines = rejected(path)

    assert len(lines) == 1
    assert lines[0].startswith("row 1, column product: unknown column; remove it or fix its name:")


def test_it_accepts_the_columns_in_any_order(tmp_path):
    order = list(reversed(COLUMNS))
    path = write_csv(tmp_path, ",".join(DEFAULTS[c] for c in order), header=",".join(order))

    run(path)

    assert Installment.objects.get().amount == Decimal("1000.00")


def test_it_rejects_installments_out_of_date_order(tmp_path):
    path = write_csv(
        tmp_path,
        line(due_date="2026-03-05"),
        line(due_date="2026-02-05"),
        line(due_date="2026-02-05"),
    )

    assert rejected(path) == [
        "row 3, column due_date: 2026-02-05 is not after the previous installment's due date 2026-03-05: list a "
        "loan's installments in date order, one per date.",
        "row 4, column due_date: 2026-02-05 is not after the previous installment's due date 2026-02-05: list a "
        "loan's installments in date order, one per date.",
    ]
    assert counts() == (0, 0, 0, 0)


def test_it_rejects_a_loan_whose_rows_disagree_on_loan_columns(tmp_path):
    path = write_csv(
        tmp_path,
        line(due_date="2026-02-05"),
        line(due_date="2026-03-05", principal="3000", currency="cny"),  # the same values, written differently
        line(due_date="2026-04-05", principal="5000.00", borrower_external_id="BR-2"),
        line(due_date="2026-05-05", phone="+8613912345678"),
    )

    assert rejected(path) == [
        "row 4, column borrower_external_id: BR-2 differs from BR-1 on row 2 of loan LN-1; repeat the same loan and "
        "borrower details on every row of a loan.",
        "row 4, column principal: 5000.00 differs from 3000.00 on row 2 of loan LN-1; repeat the same loan and "
        "borrower details on every row of a loan.",
        "row 5, column phone: +8613912345678 differs from +8613812345678 on row 2 of loan LN-1; repeat the same loan "
        "and borrower details on every row of a loan.",
    ]
    assert counts() == (0, 0, 0, 0)


def test_it_rejects_a_borrower_whose_details_differ_between_loans(tmp_path, settings):
    settings.COLLECTIONS_BATCH_SIZE = 2  # LN-3 lands in a later batch than LN-1: the database is asked
    path = write_csv(
        tmp_path,
        line(loan_external_id="LN-1", email="a@example.com"),
        line(loan_external_id="LN-1", email="a@example.com", due_date="2026-03-05"),
        line(loan_external_id="LN-2", email="b@example.com"),
        line(loan_external_id="LN-2", email="b@example.com", due_date="2026-03-05"),
        line(loan_external_id="LN-3", email="c@example.com"),
        line(loan_external_id="LN-4", email="d@example.com"),
    )

    assert rejected(path) == [
        "row 4, column email: b@example.com differs from a@example.com given for borrower BR-1 earlier in the file; "
        "give a borrower the same details on every row.",
        "row 6, column email: c@example.com differs from a@example.com given for borrower BR-1 earlier in the file; "
        "give a borrower the same details on every row.",
        "row 7, column email: d@example.com differs from c@example.com given for borrower BR-1 on row 6; give a "
        "borrower the same details on every row.",
    ]
    assert counts() == (0, 0, 0, 0)


def test_it_rejects_a_loan_that_already_exists(tmp_path):
    LoanFactory(external_id="LN-2")
    before = counts()
    path = write_csv(tmp_path, line(loan_external_id="LN-1"), line(loan_external_id="LN-2"))

    assert rejected(path) == [
        "row 3, column loan_external_id: loan LN-2 already exists; remove its rows from the file (an import only "
        "creates new loans).",
    ]
    assert counts() == before


def test_it_refuses_the_same_file_twice_and_changes_nothing_the_second_time(tmp_path):
    path = DATA / "loans_good.csv"
    run(path)
    before = counts()

    lines = rejected(path)

    assert [row.split(":")[0] for row in lines] == [
        "row 2, column loan_external_id",
        "row 5, column loan_external_id",
        "row 7, column loan_external_id",
    ]
    assert counts() == before


def test_it_rejects_a_loan_whose_rows_are_not_together(tmp_path):
    path = write_csv(
        tmp_path,
        line(loan_external_id="LN-1", due_date="2026-02-05"),
        line(loan_external_id="LN-2", due_date="2026-02-05"),
        line(loan_external_id="LN-1", due_date="2026-03-05"),
    )

    assert rejected(path) == [
        "row 4, column loan_external_id: loan LN-1 already appeared at row 2; keep each loan's rows together (sort "
        "the file by loan_external_id).",
    ]
    assert counts() == (0, 0, 0, 0)


def test_it_rejects_a_loan_whose_rows_are_not_together_across_batches(tmp_path, settings):
    settings.COLLECTIONS_BATCH_SIZE = 1
    path = write_csv(
        tmp_path,
        line(loan_external_id="LN-1", due_date="2026-02-05"),
        line(loan_external_id="LN-2", due_date="2026-02-05"),
        line(loan_external_id="LN-1", due_date="2026-03-05"),
    )

    assert rejected(path) == [
        "row 4, column loan_external_id: loan LN-1 already appeared at an earlier row; keep each loan's rows "
        "together (sort the file by loan_external_id).",
    ]
    assert counts() == (0, 0, 0, 0)


def test_it_reports_a_row_with_the_wrong_number_of_cells(tmp_path):
    path = write_csv(tmp_path, line(), line(due_date="2026-03-05").rsplit(",", 1)[0])

    assert rejected(path) == [
        "row 3: the row has 11 cells but the header has 12; check for a missing or extra comma, and put cells that "
        'contain a comma in double quotes ("...").',
    ]


def test_it_reports_a_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes(
        "\n".join([HEADER, line(), line(due_date="2026-03-05")]).encode("utf-8")
        + b"\n"
        + line(loan_external_id="LN-2").encode("gbk")
        + b"\n"
    )

    assert rejected(path) == [
        "row 4: this line is not UTF-8 text; save the file as CSV UTF-8 and import it again.",
    ]
    assert counts() == (0, 0, 0, 0)


def test_it_lists_the_first_200_errors_and_counts_the_rest(tmp_path):
    path = write_csv(
        tmp_path,
        *(line(loan_external_id=f"LN-{n}", currency="RMB") for n in range(250)),
    )

    lines = rejected(path)

    assert len(lines) == 201
    assert lines[0].startswith("row 2, column currency:")
    assert lines[199].startswith("row 201, column currency:")
    assert lines[200] == "... and 50 more"


def test_it_says_when_the_file_is_empty(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    assert rejected(path)[0].startswith("row 1: the file is empty; the header must name exactly these columns:")


def test_it_says_when_the_file_cannot_be_read(tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*missing\.csv: No such file"):
        call_command("import_loans", str(tmp_path / "missing.csv"), stdout=StringIO(), stderr=StringIO())


def test_dry_run_reports_and_changes_nothing(tmp_path):
    BorrowerFactory(external_id="BR-1", name="Old name")

    output = run(DATA / "loans_good.csv", "--dry-run")

    assert "Dry run of loans_good.csv: the file is valid and nothing was saved" in output
    assert "loans:                3" in output
    assert "installments:         6" in output
    assert "new borrowers:        1" in output
    assert "updated borrowers:    1" in output
    assert counts() == (1, 0, 0, 0)
    assert Borrower.objects.get().name == "Old name"


def test_dry_run_runs_the_database_checks(tmp_path):
    LoanFactory(external_id="LN-1")
    path = write_csv(tmp_path, line(loan_external_id="LN-1"))

    lines = rejected(path, "--dry-run")

    assert lines[0].startswith("row 2, column loan_external_id: loan LN-1 already exists;")


def test_it_updates_an_existing_borrower_and_keeps_the_opt_outs(tmp_path):
    borrower = BorrowerFactory(
        external_id="BR-1", name="王 芳", phone="+8613900000000", sms_opt_out=True, language="en"
    )
    untouched = BorrowerFactory(external_id="BR-9")
    path = write_csv(tmp_path, line(borrower_name="王芳", phone="+8613812345678", language="zh_CN"))

    output = run(path)

    borrower.refresh_from_db()
    assert (borrower.name, borrower.phone, borrower.language) == ("王芳", "+8613812345678", "zh-hans")
    assert borrower.sms_opt_out is True
    assert borrower.import_run == ImportRun.objects.get()
    assert Loan.objects.get().borrower == borrower
    assert "new borrowers:        0" in output
    assert "updated borrowers:    1" in output
    assert Borrower.objects.get(pk=untouched.pk).import_run is None


def test_it_reuses_an_unchanged_borrower_without_counting_it_as_updated(tmp_path):
    BorrowerFactory(external_id="BR-1", name="王芳", phone="+8613812345678", email="wangfang@example.com")
    path = write_csv(tmp_path, line())

    output = run(path)

    assert "updated borrowers:    0" in output
    assert "unchanged borrowers:  1" in output
    assert Borrower.objects.count() == 1


def test_it_accepts_a_utf8_bom(tmp_path):
    path = write_csv(tmp_path, line(borrower_name="李娜"), bom=True)

    run(path)

    assert Borrower.objects.get().name == "李娜"


def test_it_accepts_windows_line_endings_and_blank_lines(tmp_path):
    path = tmp_path / "crlf.csv"
    path.write_bytes("\r\n".join([HEADER, line(), "", line(due_date="2026-03-05"), "", ""]).encode("utf-8"))

    output = run(path)

    assert "rows:                 2" in output
    assert Installment.objects.count() == 2


def generated_rows(count: int, per_loan: int = 12) -> list[str]:
    rows = []
    for n in range(count):
        loan, installment = divmod(n, per_loan)
        borrower = loan // 2  # two loans per borrower, so borrowers recur across batches
        rows.append(
            line(
                loan_external_id=f"LN-{loan:06d}",
                borrower_external_id=f"BR-{borrower:06d}",
                borrower_name=f"张伟{borrower}" if borrower % 2 else f"Borrower {borrower}",
                phone=f"+86138{borrower:08d}",
                email=f"b{borrower}@example.com",
                due_date=f"{2026 + (installment + 1) // 12}-{(installment + 1) % 12 + 1:02d}-05",
            )
        )
    return rows


def test_the_number_of_queries_grows_with_batches_not_rows(tmp_path, settings):
    settings.COLLECTIONS_BATCH_SIZE = 1000
    small = write_csv(tmp_path, *generated_rows(1000), name="small.csv")
    large = write_csv(tmp_path, *generated_rows(5000), name="large.csv")

    with CaptureQueriesContext(connection) as small_queries:
        run(small)
    Installment.objects.all().delete()
    Loan.objects.all().delete()
    Borrower.objects.all().delete()
    with CaptureQueriesContext(connection) as large_queries:
        run(large)

    assert Installment.objects.count() == 5000
    assert Loan.objects.count() == 417
    # Per batch: look up loans, look up borrowers, insert borrowers, loans, installments.
    # Around them: the savepoint, the advisory lock, the ImportRun insert and update, the release.
    assert len(small_queries) == 5 + 5 * 1
    assert len(large_queries) == 5 + 5 * 5


@pytest.mark.django_db(transaction=True)
def test_two_imports_at_once_run_one_after_the_other(tmp_path, settings):
    # Both files bring the new borrower BR-1. The first writes it (batches of one loan) and
    # keeps its transaction open; were the second not to wait for the first, it would not
    # see that uncommitted borrower, insert it again and fail on the unique key.
    settings.COLLECTIONS_BATCH_SIZE = 1
    first = write_csv(
        tmp_path,
        line(loan_external_id="LN-1"),
        line(loan_external_id="LN-3", borrower_external_id="BR-3"),
        name="first.csv",
    )
    second = write_csv(tmp_path, line(loan_external_id="LN-2"), name="second.csv")
    first_is_inside = threading.Event()
    results = {}

    def import_file(path, progress=None):
        try:
            with path.open("rb") as file:
                results[path.name] = loans_import(file=file, file_name=path.name, dry_run=False, progress=progress)
        except ImportRejected as exc:
            results[path.name] = exc
        finally:
            connection.close()

    def hold_the_transaction_open(done, total):
        first_is_inside.set()
        time.sleep(0.5)

    threads = [threading.Thread(target=import_file, args=(first, hold_the_transaction_open))]
    threads[0].start()
    assert first_is_inside.wait(10)
    threads.append(threading.Thread(target=import_file, args=(second,)))
    threads[1].start()
    for thread in threads:
        thread.join(30)

    assert isinstance(results["first.csv"], ImportSummary)
    assert isinstance(results["second.csv"], ImportSummary)
    assert (results["first.csv"].borrowers_created, results["second.csv"].borrowers_unchanged) == (2, 1)
    assert Borrower.objects.filter(external_id="BR-1").count() == 1
    assert Loan.objects.filter(borrower__external_id="BR-1").count() == 2
