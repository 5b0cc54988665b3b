"""Benchmark of the escalation sweep against a hand-written set-based SQL reference.

    .venv/bin/python bench/escalation.py --cases 1000000 [--batch-size 2000] [--explain]

Works in its own scratch database (``collections_bench_escalation`` on 127.0.0.1, created
and migrated if missing, with the test settings). It

1. builds N loans with four installments each, server-side (``INSERT ... SELECT
   generate_series``), so that days past due (DPD) are spread uniformly over 0..200 on the
   business date, and no case exists yet. The data are reused by the next run with the
   same N (``--rebuild`` forces a fresh build);
2. times the project's ``sweep_run`` (a full pass that opens and moves every case, then a
   second pass that must change nothing), resets to the same start state, and times a
   reference: one hand-written statement (GROUP BY over installments, a join to the stage
   ranges, an UPDATE of the live cases and an INSERT of the new ones feeding the events
   insert) that writes the same rows, then its no-op second pass. Both results are
   compared row by row (cases and events), so the reference is known to do the same work;
3. prints the timings, the ratios, the SQL statements sent (``SweepSummary.statements`` and
   a count made by ``connection.execute_wrapper``), where the sweep spends its time per
   statement, and the peak memory (``ru_maxrss`` and tracemalloc around the sweep call).

Conditions: the sweep runs as deployed (the server's settings); the reference runs twice,
with JIT off and on, and the faster run counts (JIT compiles the big statement for seconds:
that pays off at a million rows, not at a hundred thousand; ``--reference-jit`` picks one).
Autovacuum is off on the development PostgreSQL server, so the benchmark does its work by
hand: every table is VACUUM ANALYZEd after the data are built and after each reset, and both
implementations get a VACUUM ANALYZE of the case tables between the full and the no-op
pass (what autovacuum would have done by the next sweep; ``--no-analyze`` skips it). The
sweep runs only
``cases``' own stage-action handlers (``--all-actions`` keeps notifications' and legal's,
whose messages the reference does not write).

``--explain`` then runs EXPLAIN (ANALYZE, BUFFERS) on every statement of the housekeeping
phase and of one batch (in a savepoint rolled back, so the real statement then runs on the
same state), the batch once as a full-pass batch with every other case already live and
once as a no-op batch; plans go to ``bench/results/escalation_explain_<N>.txt``.
``--sweep-module`` measures a candidate copy of the sweep instead of the project's.

The reset between measurements truncates the sweep's output (cases, events, sweep runs)
and freezes the loan tables again (the sweep row-locks the loans, which leaves lock marks
on their rows); loans and installments are checked to be untouched by the sweep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import re
import resource
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/collections_bench_escalation"
AS_OF = dt.date(2025, 6, 30)
NOW = dt.datetime(2025, 6, 30, 1, 0, tzinfo=dt.UTC)  # 09:00 in Asia/Shanghai on the business date
NOW_SECOND_PASS = NOW + dt.timedelta(hours=1)
MAX_DPD = 200
INSTALLMENTS_PER_LOAN = 4
DATA_VERSION = 1
LIVE = "('open', 'on_hold', 'awaiting_approval')"


# --- Setup ------------------------------------------------------------------------------


def setup_django(db_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "collections_portal.settings.test"
    os.environ["DATABASE_URL"] = db_url
    # The sweep logs one line per batch for stage actions no app handles yet.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    ensure_database(db_url)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def ensure_database(db_url: str) -> None:
    import psycopg2

    parts = urlsplit(db_url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
                print(f"created database {name}")
    finally:
        conn.close()


def sql(statement: str, params=None, *, fetch: bool = False):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if fetch else None


# --- Data -------------------------------------------------------------------------------

# DPD of loan g: (g * 48271) mod 201 runs through every value 0..200 once per 201 loans.
DPD_OF = f"mod(g::bigint * 48271, {MAX_DPD + 1})::int"

BUILD_SQL = [
    """
    INSERT INTO cases_borrower (id, external_id, name, phone, email, language, timezone, national_id,
                                consent_sms, consent_email, sms_opt_out, email_opt_out, created_at, updated_at)
    SELECT b, 'BB' || lpad(b::text, 9, '0'), 'Bench borrower ' || b, '+86138' || lpad(b::text, 8, '0'),
           '', 'zh-hans', 'Asia/Shanghai', '', TRUE, TRUE, FALSE, FALSE, %(now)s, %(now)s
    FROM generate_series(1, %(borrowers)s) b
    """,
    f"""
    INSERT INTO cases_loan (id, external_id, borrower_id, principal, currency, disbursed_on, product, created_at)
    SELECT g, 'BL' || lpad(g::text, 9, '0'), (g - 1) / %(per_borrower)s + 1,
           {INSTALLMENTS_PER_LOAN} * (300 + mod(g, 50) * 25), 'CNY',
           %(as_of)s::date - {DPD_OF} - 60, 'bench', %(now)s
    FROM generate_series(1, %(loans)s) g
    """,
    # Per loan: #1 fully paid 30 days before #2, #2 the oldest unpaid (due DPD days before the
    # business date; a third of them half paid), #3 and #4 due 30 and 60 days after #2.
    f"""
    INSERT INTO cases_installment (id, loan_id, sequence, due_date, amount, paid_amount)
    SELECT (g - 1) * {INSTALLMENTS_PER_LOAN} + s, g, s, %(as_of)s::date - {DPD_OF} + 30 * (s - 2),
           300 + mod(g, 50) * 25,
           CASE WHEN s = 1 THEN 300 + mod(g, 50) * 25
                WHEN s = 2 AND mod(g, 3) = 0 THEN (300 + mod(g, 50) * 25) / 2
                ELSE 0 END
    FROM generate_series(1, %(loans)s) g CROSS JOIN generate_series(1, {INSTALLMENTS_PER_LOAN}) s
    ORDER BY g, s
    """,
]


def data_is_current(n: int, per_borrower: int) -> bool:
    sql("CREATE TABLE IF NOT EXISTS bench_escalation_meta (loans int, per_borrower int, as_of date, version int)")
    row = sql("SELECT loans, per_borrower, as_of, version FROM bench_escalation_meta", fetch=True)
    if row != [(n, per_borrower, AS_OF, DATA_VERSION)]:
        return False
    return sql("SELECT count(*) FROM cases_loan", fetch=True)[0][0] == n


def build(n: int, per_borrower: int) -> float:
    started = time.perf_counter()
    sql("DELETE FROM bench_escalation_meta")
    # Everything references loans or cases: one TRUNCATE empties the scratch tables.
    sql("TRUNCATE cases_borrower, cases_loan, cases_installment, cases_case, cases_sweeprun RESTART IDENTITY CASCADE")
    params = {"now": NOW, "as_of": AS_OF, "loans": n, "per_borrower": per_borrower}
    params["borrowers"] = (n + per_borrower - 1) // per_borrower
    # The generated rows are consistent by construction: skip the per-row FK triggers.
    sql("SET session_replication_role = replica")
    try:
        for statement in BUILD_SQL:
            sql(statement, params)
    finally:
        sql("SET session_replication_role = DEFAULT")
    for table in ("cases_borrower", "cases_loan", "cases_installment"):
        sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    sql("VACUUM (FREEZE, ANALYZE) cases_borrower, cases_loan, cases_installment")
    sql(
        "INSERT INTO bench_escalation_meta VALUES (%s, %s, %s, %s)",
        [n, per_borrower, AS_OF, DATA_VERSION],
    )
    return time.perf_counter() - started


def reset() -> None:
    """Back to the start state: loans and installments as built, no case, no event."""
    sql("TRUNCATE cases_case, cases_sweeprun RESTART IDENTITY CASCADE")
    # Clears the lock marks the sweep's SELECT ... FOR UPDATE left on the loan rows.
    sql("VACUUM (FREEZE, ANALYZE) cases_loan, cases_installment")
    # Autovacuum is off on the development server: statistics and visibility maps of the
    # (now empty) case tables are what autovacuum would have left, not leftovers of the last run.
    sql(
        "VACUUM (ANALYZE) cases_case, cases_caseevent, cases_hold, cases_promisetopay, cases_paymentplan, "
        "cases_planinstallment, cases_payment, cases_stage, cases_sweeprun"
    )
    sql("CHECKPOINT")


def between_passes(skip: bool) -> None:
    """What autovacuum would have done by the next sweep (it is off on the development server):
    dead row versions of the full pass cleaned up and fresh statistics on the case tables.
    Without it the planner still believes the case tables empty, as they were at the reset."""
    if not skip:
        sql("VACUUM (ANALYZE) cases_case, cases_caseevent")


def dead_case_rows() -> int:
    """Dead row versions the pass left in cases_case (work for autovacuum, not timed)."""
    sql("SELECT pg_stat_force_next_flush()")
    return sql("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'cases_case'", fetch=True)[0][0]


def loan_fingerprint() -> tuple:
    installments = sql(
        "SELECT count(*), sum(amount), sum(paid_amount), sum(due_date - DATE '2000-01-01'), sum(loan_id) "
        "FROM cases_installment",
        fetch=True,
    )[0]
    loans = sql("SELECT count(*), sum(borrower_id) FROM cases_loan", fetch=True)[0]
    return (*installments, *loans)


def expected_dpd_histogram(n: int) -> Counter:
    return Counter((g * 48271) % (MAX_DPD + 1) for g in range(1, n + 1))


# --- Measuring SQL ----------------------------------------------------------------------

# First match wins: (piece of normalised SQL, label).
LABELS = [
    ("pg_advisory_lock", "advisory lock"),
    ("pg_advisory_unlock", "advisory unlock"),
    ("for update) select per_loan", "lock loans + balances into temp table"),
    ("from cases_loan where id between", "lock the batch's loans (FOR UPDATE)"),
    ("drop table", "drop temp table"),
    ("create temp table sweep_balance", "balances: GROUP BY into temp table"),
    ("with opened as", "open cases at final stage + their events"),
    ("insert into cases_caseevent", "events (INSERT ... unnest)"),
    ("insert into cases_case", "open cases at final stage (INSERT)"),
    ("analyze sweep_balance", "ANALYZE temp table"),
    ("update cases_case set days_past_due", "refresh + resolve"),
    ("set status = 'resolved'", "resolve DPD 0"),
    ("with t (from_stage", "advance: move + gate + repeat (one UPDATE)"),
    ("with moves", "move stages"),
    ("with gates", "gate: awaiting approval"),
    ("set repeat_count = repeat_count + 1", "repeats"),
    ('insert into "cases_caseevent"', "events (bulk_create)"),
    ("update cases_hold", "housekeeping: release holds"),
    ("update cases_promisetopay", "housekeeping: settle promises"),
    ("update cases_paymentplan", "housekeeping: settle plans"),
    ("set status = 'on_hold'", "housekeeping: hold sync to on_hold"),
    ("where true and status = 'on_hold'", "housekeeping: hold sync from on_hold"),
    ("promise_grace_days", "housekeeping: policy grace days"),
    ('"cases_sweeprun"', "SweepRun bookkeeping"),
    ('update "cases_case" set "next_action_on"', "handler call_task"),
    ('"auth_group"', "handler assign_collector: loads"),
    ('select "cases_case"."id" from "cases_case"', "handler assign_collector / rebalance"),
    ('from "cases_stage"', "stage map"),
    ("with st as", "reference statement"),
]


def label_of(statement: str) -> str:
    normal = " ".join(statement.split()).lower()
    for piece, label in LABELS:
        if piece in normal:
            return label
    return normal[:70]


class SqlMeter:
    """connection.execute_wrapper: counts the statements and times them, by kind."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.by_label: Counter = Counter()
        self.seconds_by_label: defaultdict[str, float] = defaultdict(float)

    def __call__(self, execute, statement, params, many, context):
        started = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            elapsed = time.perf_counter() - started
            label = label_of(statement)
            self.count += 1
            self.seconds += elapsed
            self.by_label[label] += 1
            self.seconds_by_label[label] += elapsed


class Explainer:
    """connection.execute_wrapper: EXPLAIN (ANALYZE, BUFFERS) each statement run inside a
    transaction, in a savepoint rolled back before the real statement runs on the same state."""

    EXPLAINABLE = ("select", "insert", "update", "delete", "with", "create temp table")

    def __init__(self) -> None:
        self.plans: list[tuple[str, float, str, str]] = []

    def __call__(self, execute, statement, params, many, context):
        normal = " ".join(statement.split()).lower()
        conn = context["connection"]
        if not many and conn.in_atomic_block and normal.startswith(self.EXPLAINABLE):
            with conn.connection.cursor() as cursor:
                cursor.execute("SAVEPOINT bench_explain")
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                cursor.execute("ROLLBACK TO SAVEPOINT bench_explain")
                cursor.execute("RELEASE SAVEPOINT bench_explain")
            found = re.search(r"Execution Time: ([\d.]+) ms", plan)
            self.plans.append((label_of(statement), float(found.group(1)) if found else 0.0, statement, plan))
        return execute(statement, params, many, context)


@dataclass
class Timing:
    """Wall time, plus CPU time of this process and of its PostgreSQL backend (same host):
    the machine is shared, and CPU seconds suffer less than wall seconds from the others."""

    wall: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float | None = 0.0

    @property
    def cpu(self) -> float | None:
        return None if self.server_cpu is None else self.client_cpu + self.server_cpu


@contextmanager
def core_stage_actions_only(keep_all: bool):
    """Leave out the stage-action handlers other apps registered (notifications queues an SMS
    and an email per stage entry, legal its matters): the reference writes cases and events,
    so the sweep is compared on the same work. ``cases``' own handlers (assignment, call
    task) stay; the reference writes the call task's next_action_on too. Yields (kept, left out)."""
    from cases.actions import register_stage_action, registered_actions, unregister_stage_action

    def name(handler) -> str:
        return f"{handler.__module__}.{handler.__name__}"

    removed, kept = [], []
    for action, handlers in registered_actions().items():
        for handler in handlers:
            if keep_all or handler.__module__.startswith("cases."):
                kept.append(f"{action}: {name(handler)}")
            else:
                unregister_stage_action(action, handler)
                removed.append((action, handler))
    try:
        yield kept, [f"{action}: {name(handler)}" for action, handler in removed]
    finally:
        for action, handler in removed:
            register_stage_action(action)(handler)


def backend_cpu_seconds() -> float | None:
    from django.db import connection

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the server runs elsewhere
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def measure():
    timing = Timing()
    wall, client, server = time.perf_counter(), time.process_time(), backend_cpu_seconds()
    yield timing
    timing.wall = time.perf_counter() - wall
    timing.client_cpu = time.process_time() - client
    after = backend_cpu_seconds()
    timing.server_cpu = None if server is None or after is None else after - server


# --- The two implementations -----------------------------------------------------------


DEFAULT_SWEEP_MODULE = "cases.services.sweep"
_selected = {"sweep_module": DEFAULT_SWEEP_MODULE}


def sweep_module():
    return importlib.import_module(_selected["sweep_module"])


def run_sweep(*, now: dt.datetime, batch_size: int | None, trace: bool = False, quiet: bool = False):
    from django.db import connection

    sweep_run = sweep_module().sweep_run
    meter = SqlMeter()
    last = [0.0]

    def progress(number: int, total: int) -> None:
        if quiet:
            return
        moment = time.perf_counter()
        if number == total or moment - last[0] > 30:
            last[0] = moment
            print(f"    sweep batch {number}/{total}", file=sys.stderr, flush=True)

    traced_peak = None
    if trace:
        tracemalloc.start()
    try:
        with connection.execute_wrapper(meter), measure() as timing:
            summary = sweep_run(as_of=AS_OF, now=now, batch_size=batch_size, progress=progress)
        if trace:
            traced_peak = tracemalloc.get_traced_memory()[1]
    finally:
        if trace:
            tracemalloc.stop()
    return timing, summary, meter, traced_peak


# One statement. Stage ranges come from the stage rules (stages up to the first one that
# requires approval are targets; that one is a gate). DPD, outstanding and overdue are one
# GROUP BY over installments. Live cases get one UPDATE (metrics, priority, resolve, move,
# gate, repeat) that touches only the rows that change; loans without a live case get an
# INSERT with their target stage directly. Both feed the events INSERT.
REFERENCE_SQL = f"""
WITH st AS (
    SELECT id, "order" AS ord, code, entry_dpd, repeat_interval_days, requires_approval,
           entry_actions ? 'call_task' AS call_task
    FROM cases_stage WHERE active
),
gate AS (
    SELECT id AS gate_id, ord AS gate_order, entry_dpd AS gate_dpd
    FROM st WHERE requires_approval ORDER BY ord LIMIT 1
),
ranges AS (
    SELECT st.id AS stage_id, st.ord AS stage_order, st.call_task, st.entry_dpd AS lo,
           lead(st.entry_dpd) OVER (ORDER BY st.ord) AS hi
    FROM st LEFT JOIN gate ON TRUE
    WHERE gate.gate_order IS NULL OR st.ord < gate.gate_order
),
bal AS (
    SELECT loan_id, COALESCE(GREATEST(0, %(as_of)s::date - oldest), 0) AS dpd, outstanding, overdue
    FROM (
        SELECT i.loan_id,
               MIN(i.due_date) FILTER (WHERE i.paid_amount < i.amount) AS oldest,
               ROUND(SUM(i.amount - i.paid_amount), 2) AS outstanding,
               ROUND(COALESCE(SUM(i.amount - i.paid_amount) FILTER (WHERE i.due_date < %(as_of)s), 0), 2) AS overdue
        FROM cases_installment i
        GROUP BY i.loan_id
    ) per_loan
),
tgt AS (
    SELECT b.loan_id, b.dpd, b.outstanding, b.overdue, r.stage_id, r.stage_order, COALESCE(r.call_task, FALSE)
               AS call_task,
           g.gate_id, g.gate_order, COALESCE(b.dpd >= g.gate_dpd, FALSE) AS gated,
           CASE WHEN b.dpd > 180 THEN 180 ELSE b.dpd END
           + CASE WHEN b.outstanding >= 30000 THEN 300 ELSE CAST(b.outstanding / 100 AS INTEGER) END AS base_priority
    FROM bal b
    LEFT JOIN ranges r ON b.dpd >= r.lo AND (r.hi IS NULL OR b.dpd < r.hi)
    LEFT JOIN gate g ON TRUE
),
-- The live cases as they were before this statement, read once (a plain NOT EXISTS on
-- cases_case would be re-scanned per row while the INSERT below appends to the table).
live AS MATERIALIZED (
    SELECT id, loan_id, stage_id, status, paused_until, pending_stage_id, gate_snoozed_until, stage_entered_on,
           repeat_count, days_past_due, outstanding, overdue_amount, priority, last_contact_at, opened_at
    FROM cases_case WHERE status IN {LIVE}
),
cur AS (
    SELECT c.id, c.stage_id AS old_stage, t.dpd, t.outstanding, t.overdue, t.stage_id AS target_stage, t.call_task,
           t.gate_id,
           t.base_priority
           + CASE WHEN COALESCE(bp.n, 0) > 3 THEN 150 ELSE 50 * COALESCE(bp.n, 0) END
           + LEAST(30, GREATEST(0, %(as_of)s::date
                                   - (COALESCE(c.last_contact_at, c.opened_at) AT TIME ZONE %(tz)s)::date)) AS priority,
           t.dpd = 0 AS resolve,
           c.status = 'open' AND (c.paused_until IS NULL OR c.paused_until < %(as_of)s)
               AND NOT EXISTS (SELECT 1 FROM cases_paymentplan pp WHERE pp.case_id = c.id AND pp.status = 'active')
               AS movable,
           t.stage_id IS NOT NULL AND (so.ord IS NULL OR t.stage_order > so.ord) AS forward,
           CASE WHEN t.stage_id IS NOT NULL AND (so.ord IS NULL OR t.stage_order > so.ord)
                THEN t.stage_order ELSE so.ord END AS new_order,
           t.gated AND c.pending_stage_id IS NULL
               AND (c.gate_snoozed_until IS NULL OR c.gate_snoozed_until < %(as_of)s) AS gate_due,
           t.gate_order,
           so.repeat_interval_days IS NOT NULL
               AND c.stage_entered_on <= %(as_of)s::date - so.repeat_interval_days * (c.repeat_count + 1) AS repeat_due,
           c.days_past_due, c.outstanding AS old_outstanding, c.overdue_amount, c.priority AS old_priority
    FROM live c
    JOIN tgt t ON t.loan_id = c.loan_id
    LEFT JOIN st so ON so.id = c.stage_id
    LEFT JOIN (SELECT case_id, count(*) AS n FROM cases_promisetopay WHERE status = 'broken' GROUP BY case_id) bp
        ON bp.case_id = c.id
),
dec AS (
    SELECT cur.*,
           NOT resolve AND movable AND forward AS move,
           NOT resolve AND movable AND gate_due AND (new_order IS NULL OR new_order < gate_order) AS gate,
           NOT resolve AND movable AND NOT forward AND repeat_due
               AND NOT (gate_due AND (new_order IS NULL OR new_order < gate_order)) AS repeat
    FROM cur
),
upd AS (
    UPDATE cases_case c SET
        days_past_due = d.dpd, outstanding = d.outstanding, overdue_amount = d.overdue, priority = d.priority,
        status = CASE WHEN d.resolve THEN 'resolved' WHEN d.gate THEN 'awaiting_approval' ELSE c.status END,
        resolved_at = CASE WHEN d.resolve THEN %(now)s ELSE c.resolved_at END,
        stage_id = CASE WHEN d.move THEN d.target_stage ELSE c.stage_id END,
        stage_entered_at = CASE WHEN d.move THEN %(now)s ELSE c.stage_entered_at END,
        stage_entered_on = CASE WHEN d.move THEN %(as_of)s ELSE c.stage_entered_on END,
        repeat_count = CASE WHEN d.move THEN 0 WHEN d.repeat THEN c.repeat_count + 1 ELSE c.repeat_count END,
        pending_stage_id = CASE WHEN d.gate THEN d.gate_id ELSE c.pending_stage_id END,
        approval_requested_at = CASE WHEN d.gate THEN %(now)s ELSE c.approval_requested_at END,
        approval_requested_by_id = CASE WHEN d.gate THEN NULL ELSE c.approval_requested_by_id END,
        next_action_on = CASE WHEN d.move AND d.call_task AND (c.next_action_on IS NULL OR c.next_action_on > %(as_of)s)
                              THEN %(as_of)s ELSE c.next_action_on END,
        updated_at = %(now)s
    FROM dec d
    WHERE c.id = d.id
      AND (d.resolve OR d.move OR d.gate OR d.repeat OR d.days_past_due <> d.dpd OR d.old_outstanding <> d.outstanding
           OR d.overdue_amount <> d.overdue OR d.old_priority <> d.priority)
    RETURNING c.id, d.old_stage, c.stage_id, c.pending_stage_id, c.days_past_due, d.resolve, d.move, d.gate
),
ins AS (
    INSERT INTO cases_case (loan_id, status, stage_id, pending_stage_id, days_past_due, outstanding, overdue_amount,
                            priority, opened_at, stage_entered_at, stage_entered_on, repeat_count,
                            approval_requested_at, next_action_on, updated_at)
    SELECT t.loan_id, CASE WHEN t.gated THEN 'awaiting_approval' ELSE 'open' END, t.stage_id,
           CASE WHEN t.gated THEN t.gate_id END, t.dpd, t.outstanding, t.overdue,
           t.base_priority + LEAST(30, GREATEST(0, %(as_of)s::date - (%(now)s::timestamptz AT TIME ZONE %(tz)s)::date)),
           %(now)s, CASE WHEN t.stage_id IS NOT NULL THEN %(now)s::timestamptz END,
           CASE WHEN t.stage_id IS NOT NULL THEN %(as_of)s::date END, 0,
           CASE WHEN t.gated THEN %(now)s::timestamptz END, CASE WHEN t.call_task THEN %(as_of)s::date END, %(now)s
    FROM tgt t
    WHERE t.dpd >= (SELECT min(entry_dpd) FROM st)
      AND NOT EXISTS (SELECT 1 FROM live WHERE live.loan_id = t.loan_id)
    ON CONFLICT (loan_id) WHERE status IN {LIVE} DO NOTHING
    RETURNING id, stage_id, pending_stage_id, days_past_due
),
ev AS (
    INSERT INTO cases_caseevent (case_id, at, kind, actor_id, detail)
    SELECT e.case_id, %(now)s, e.kind, NULL, e.detail
    FROM (
        SELECT id, 'opened', jsonb_build_object('days_past_due', days_past_due) FROM ins
        UNION ALL
        SELECT ins.id, 'stage_changed',
               jsonb_build_object('from', NULL, 'to', s.code, 'days_past_due', ins.days_past_due)
        FROM ins JOIN st s ON s.id = ins.stage_id
        UNION ALL
        SELECT ins.id, 'awaiting_approval', jsonb_build_object('stage', s.code, 'days_past_due', ins.days_past_due)
        FROM ins JOIN st s ON s.id = ins.pending_stage_id
        UNION ALL
        SELECT id, 'resolved', jsonb_build_object('reason', 'days_past_due_zero') FROM upd WHERE resolve
        UNION ALL
        SELECT upd.id, 'stage_changed',
               jsonb_build_object('from', o.code, 'to', s.code, 'days_past_due', upd.days_past_due)
        FROM upd JOIN st s ON s.id = upd.stage_id LEFT JOIN st o ON o.id = upd.old_stage
        WHERE upd.move
        UNION ALL
        SELECT upd.id, 'awaiting_approval', jsonb_build_object('stage', s.code, 'days_past_due', upd.days_past_due)
        FROM upd JOIN st s ON s.id = upd.pending_stage_id
        WHERE upd.gate
    ) e (case_id, kind, detail)
    RETURNING kind
)
SELECT 'cases inserted', count(*) FROM ins
UNION ALL SELECT 'cases updated', count(*) FROM upd
UNION ALL SELECT 'events ' || kind, count(*) FROM ev GROUP BY kind
"""


def run_reference(*, now: dt.datetime, jit: str):
    from django.conf import settings
    from django.db import connection

    meter = SqlMeter()
    sql(f"SET jit = {jit}")
    try:
        with connection.execute_wrapper(meter), measure() as timing:
            rows = sql(REFERENCE_SQL, {"as_of": AS_OF, "now": now, "tz": settings.TIME_ZONE}, fetch=True)
    finally:
        sql("RESET jit")
    return timing, dict(rows), meter


@dataclass
class ReferenceRun:
    jit: str
    full: Timing
    noop: Timing
    rows_full: dict
    rows_noop: dict
    statements: tuple[int, int]
    counts_after_full: tuple[Counter, Counter]
    counts_after_noop: tuple[Counter, Counter]
    dead_rows: int


def reference_runs(modes: list[str], *, no_analyze: bool) -> list[ReferenceRun]:
    """The reference from the start state, once per JIT setting: JIT compiles the big
    statement for seconds (it pays off at a million rows, not at a hundred thousand), and the
    reference is meant to be the best the SQL can do. The first run's result is kept."""
    runs = []
    for number, jit in enumerate(modes):
        reset()
        print(f"reference, full pass (jit {jit}) ...", flush=True)
        full, rows_full, meter_full = run_reference(now=NOW, jit=jit)
        counts_after_full = state_counts()
        dead_rows = dead_case_rows()
        between_passes(no_analyze)
        print(f"reference, no-op pass (jit {jit}) ...", flush=True)
        noop, rows_noop, meter_noop = run_reference(now=NOW_SECOND_PASS, jit=jit)
        if number == 0:
            snapshot("reference")
        runs.append(
            ReferenceRun(
                jit,
                full,
                noop,
                rows_full,
                rows_noop,
                (meter_full.count, meter_noop.count),
                counts_after_full,
                state_counts(),
                dead_rows,
            )
        )
    return runs


# --- Checks -----------------------------------------------------------------------------


def state_counts() -> tuple[Counter, Counter]:
    cases = Counter(
        {
            (status, code or "-"): n
            for status, code, n in sql(
                "SELECT c.status, s.code, count(*) FROM cases_case c LEFT JOIN cases_stage s ON s.id = c.stage_id "
                "GROUP BY 1, 2",
                fetch=True,
            )
        }
    )
    events = Counter(dict(sql("SELECT kind, count(*) FROM cases_caseevent GROUP BY kind", fetch=True)))
    return cases, events


CASE_COLUMNS = (
    "loan_id, status, stage_id, pending_stage_id, days_past_due, outstanding, overdue_amount, priority, opened_at, "
    "stage_entered_at, stage_entered_on, repeat_count, approval_requested_at, approval_requested_by_id, "
    "next_action_on, paused_until, resolved_at, assigned_to_id, updated_at"
)


def snapshot(suffix: str) -> None:
    for kind in ("cases", "events"):
        sql(f"DROP TABLE IF EXISTS bench_snap_{kind}_{suffix}")
    sql(f"CREATE UNLOGGED TABLE bench_snap_cases_{suffix} AS SELECT {CASE_COLUMNS} FROM cases_case")
    sql(
        f"CREATE UNLOGGED TABLE bench_snap_events_{suffix} AS "
        "SELECT c.loan_id, e.kind, e.at, e.actor_id, e.detail "
        "FROM cases_caseevent e JOIN cases_case c ON c.id = e.case_id"
    )


def snapshot_differences(a: str, b: str) -> dict[str, int]:
    result = {}
    for kind in ("cases", "events"):
        left, right = f"bench_snap_{kind}_{a}", f"bench_snap_{kind}_{b}"
        result[kind] = sql(
            f"SELECT count(*) FROM ((SELECT * FROM {left} EXCEPT ALL SELECT * FROM {right}) "
            f"UNION ALL (SELECT * FROM {right} EXCEPT ALL SELECT * FROM {left})) d",
            fetch=True,
        )[0][0]
    return result


# --- Output -----------------------------------------------------------------------------


def seconds(timing: Timing) -> str:
    cpu = "" if timing.cpu is None else f"   (CPU {timing.client_cpu:.2f} client + {timing.server_cpu:.2f} server)"
    return f"{timing.wall:8.2f}{cpu}"


def ratio(sweep: Timing, reference: Timing) -> str:
    cpu = "" if sweep.cpu is None or not reference.cpu else f"   (CPU: {sweep.cpu / reference.cpu:.2f})"
    return f"{sweep.wall / reference.wall:8.2f}{cpu}   target <= 1.5"


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MB"


def machine() -> str:
    """CPU, memory and the PostgreSQL settings that matter for the figures."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        memory_kb = 0
    server = sql("SHOW server_version", fetch=True)[0][0].split()[0]
    names = ("shared_buffers", "work_mem", "synchronous_commit")
    settings = ", ".join(f"{name} {sql(f'SHOW {name}', fetch=True)[0][0]}" for name in names)
    return f"{os.cpu_count()} x {cpu}, {memory_kb / 2**20:.0f} GB RAM; PostgreSQL {server} ({settings})"


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def print_meter(title: str, meter: SqlMeter, total_seconds: float) -> None:
    print(f"\n{title}")
    print(f"  {'statement':<42} {'count':>7} {'seconds':>9} {'ms each':>9} {'share':>6}")
    for label, seconds in sorted(meter.seconds_by_label.items(), key=lambda item: -item[1]):
        count = meter.by_label[label]
        print(
            f"  {label[:42]:<42} {count:>7} {seconds:>9.2f} {1000 * seconds / count:>9.2f} "
            f"{100 * seconds / total_seconds:>5.1f}%"
        )
    outside = total_seconds - meter.seconds
    print(
        f"  {'(Python outside execute())':<42} {'':>7} {outside:>9.2f} {'':>9} {100 * outside / total_seconds:>5.1f}%"
    )


def print_counts(sweep: tuple[Counter, Counter], reference: tuple[Counter, Counter]) -> bool:
    print("\nResult after the full pass (sweep | reference)")
    same = True
    for title, left, right in (("cases", sweep[0], reference[0]), ("events", sweep[1], reference[1])):
        for key in sorted(set(left) | set(right), key=str):
            mark = "" if left[key] == right[key] else "   <-- DIFFERS"
            same &= not mark
            name = "/".join(key) if isinstance(key, tuple) else key
            print(f"  {title:<6} {name:<34} {left[key]:>10,} | {right[key]:>10,}{mark}")
        print(f"  {title:<6} {'total':<34} {sum(left.values()):>10,} | {sum(right.values()):>10,}")
    return same


# --- Main -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="number of loans (about 200/201 of them get a case)")
    parser.add_argument("--batch-size", type=int, default=None, help="passed to sweep_run (default: the setting)")
    parser.add_argument("--loans-per-borrower", type=int, default=4)
    parser.add_argument("--db-url", default=DEFAULT_DB_URL)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the data even if the last build matches")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the extra sweep run under tracemalloc")
    parser.add_argument(
        "--all-actions",
        action="store_true",
        help="keep every registered stage-action handler (notifications' messages...) in the timed sweep",
    )
    parser.add_argument(
        "--reference-jit",
        choices=["both", "off", "on"],
        default="both",
        help="JIT for the reference statement: both (default: the faster run counts), off or on; "
        "the sweep runs with the server's setting",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="no VACUUM ANALYZE of the case tables between the full and the no-op pass (autovacuum's job, if on)",
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE one batch (written to bench/results)")
    parser.add_argument("--explain-batch", type=int, default=None, help="which batch (default: the middle one)")
    parser.add_argument(
        "--sweep-module",
        default=DEFAULT_SWEEP_MODULE,
        help="import path of the sweep to measure (e.g. a candidate copy with sweep_run and sweep_batch)",
    )
    args = parser.parse_args()
    n = args.cases
    _selected["sweep_module"] = args.sweep_module
    load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())

    setup_django(args.db_url)
    from django.conf import settings
    from django.db import connection

    batch_size = args.batch_size or settings.COLLECTIONS_BATCH_SIZE
    batches = -(-n // batch_size)
    print(
        f"escalation benchmark: {n:,} loans, batch size {batch_size}, as_of {AS_OF}, "
        f"database {connection.settings_dict['NAME']}"
    )

    if args.rebuild or not data_is_current(n, args.loans_per_borrower):
        print(f"building {n:,} loans, {n * INSTALLMENTS_PER_LOAN:,} installments ...", flush=True)
        build_seconds = build(n, args.loans_per_borrower)
        print(f"  built in {build_seconds:.1f} s")
    else:
        build_seconds = None
        print("  reusing the data already built for this size")
    dpd = dict(sql(f"SELECT {DPD_OF} AS dpd, count(*) FROM generate_series(1, %s) g GROUP BY 1", [n], fetch=True))
    assert dpd == expected_dpd_histogram(n), "DPD histogram of the generator differs from the expectation"
    fingerprint = loan_fingerprint()

    actions = ExitStack()
    kept_actions, left_out_actions = actions.enter_context(core_stage_actions_only(args.all_actions))

    # (a) the sweep, full pass, then (c1) its no-op pass.
    reset()
    rss_before = maxrss_bytes()
    print("sweep, full pass ...", flush=True)
    sweep_full, summary_full, meter_full, _ = run_sweep(now=NOW, batch_size=args.batch_size)
    rss_after_sweep = maxrss_bytes()
    counts_after_full = state_counts()
    dead_sweep = dead_case_rows()
    between_passes(args.no_analyze)
    print("sweep, no-op pass ...", flush=True)
    sweep_noop, summary_noop, meter_noop, _ = run_sweep(now=NOW_SECOND_PASS, batch_size=args.batch_size)
    sweep_counts = state_counts()
    snapshot("sweep")
    sweep_noop_changed = summary_noop.changed or sweep_counts != counts_after_full
    untouched = loan_fingerprint() == fingerprint

    # (b) the reference, full pass, then (c2) its no-op pass (per JIT setting; the faster counts).
    modes = ["off", "on"] if args.reference_jit == "both" else [args.reference_jit]
    references = reference_runs(modes, no_analyze=args.no_analyze)
    first = references[0]
    ref_full = min((run.full for run in references), key=lambda timing: timing.wall)
    ref_noop = min((run.noop for run in references), key=lambda timing: timing.wall)
    ref_counts_after_full, ref_rows_full, dead_reference = first.counts_after_full, first.rows_full, first.dead_rows
    ref_noop_changed = any(
        any(run.rows_noop.values()) or run.counts_after_noop != run.counts_after_full for run in references
    )
    ref_runs_agree = all(run.counts_after_full == first.counts_after_full for run in references)
    differences = snapshot_differences("sweep", "reference")

    # Memory: an extra sweep under tracemalloc (it slows Python down, so it is not the timed one).
    traced_peak = traced_seconds = None
    if not args.no_tracemalloc:
        reset()
        print("sweep, full pass under tracemalloc ...", flush=True)
        traced_seconds, _, _, traced_peak = run_sweep(now=NOW, batch_size=args.batch_size, trace=True)

    # --- Report ---
    same = print_counts(counts_after_full, ref_counts_after_full)
    expected_cases = n - dpd.get(0, 0)
    print_rows(
        "Checks",
        [
            ("cases expected (loans with DPD >= 1)", f"{expected_cases:,}"),
            ("counts per stage/status and events", "same" if same else "DIFFERENT"),
            (
                "row-by-row differences (cases, events)",
                f"{differences['cases']:,}, {differences['events']:,}",
            ),
            ("sweep no-op pass changed something", "YES" if sweep_noop_changed else "no"),
            ("reference no-op pass changed something", "YES" if ref_noop_changed else "no"),
            ("reference runs (JIT off / on) agree", "yes" if ref_runs_agree else "NO"),
            ("loans and installments untouched by the sweep", "yes" if untouched else "NO"),
        ],
    )
    stmt_per_batch = summary_full.statements / max(summary_full.batches, 1)
    print_rows(
        f"Escalation sweep benchmark, {n:,} loans ({expected_cases:,} cases), batch size {batch_size}",
        [
            ("cases N", f"{n:,}"),
            ("build, s", f"{build_seconds:.1f}" if build_seconds is not None else "reused"),
            ("sweep full, s", seconds(sweep_full)),
            ("reference full, s", seconds(ref_full)),
            ("sweep no-op, s", seconds(sweep_noop)),
            ("reference no-op, s", seconds(ref_noop)),
            ("ratio full (sweep / reference)", ratio(sweep_full, ref_full)),
            ("ratio no-op (sweep / reference)", ratio(sweep_noop, ref_noop)),
            ("sweep throughput, cases/s (wall)", f"{expected_cases / sweep_full.wall:,.0f}"),
            ("dead cases_case row versions after the full pass", f"{dead_sweep:,} sweep, {dead_reference:,} reference"),
            (
                "between full and no-op pass",
                "nothing" if args.no_analyze else "VACUUM ANALYZE cases_case, cases_caseevent (both implementations)",
            ),
            (
                "reference full / no-op, s, by JIT",
                "; ".join(f"jit {run.jit}: {run.full.wall:.2f} / {run.noop.wall:.2f}" for run in references),
            ),
            (
                "autovacuum / jit on the server (the sweep's setting)",
                f"{sql('SHOW autovacuum', fetch=True)[0][0]} / {sql('SHOW jit', fetch=True)[0][0]}",
            ),
            ("machine", machine()),
            ("stage actions run by the sweep", "; ".join(kept_actions) or "none"),
            ("stage actions left out (--all-actions keeps them)", "; ".join(left_out_actions) or "none"),
            ("load average at start / end", f"{load_start} / {' '.join(f'{x:.1f}' for x in os.getloadavg())}"),
            ("batches", f"{summary_full.batches:,} (+1 housekeeping)"),
            (
                "statements, SweepSummary (full / no-op)",
                f"{summary_full.statements:,} / {summary_noop.statements:,}",
            ),
            ("statements, execute_wrapper (full / no-op)", f"{meter_full.count:,} / {meter_noop.count:,}"),
            (
                "statements per batch (summary / wrapper)",
                f"{stmt_per_batch:.1f} / {meter_full.count / max(summary_full.batches, 1):.1f} full, "
                f"{summary_noop.statements / max(summary_noop.batches, 1):.1f} / "
                f"{meter_noop.count / max(summary_noop.batches, 1):.1f} no-op",
            ),
            ("reference statements (full / no-op)", " / ".join(map(str, first.statements))),
            (
                "sweep summary (full pass)",
                f"opened {summary_full.opened:,}, escalated {dict(summary_full.escalated)}, "
                f"awaiting approval {summary_full.awaiting_approval:,}, refreshed {summary_full.refreshed:,}",
            ),
            ("reference result (full pass)", str(ref_rows_full)),
            ("peak RSS before the sweep (ru_maxrss)", mb(rss_before)),
            ("peak RSS after the timed sweep (ru_maxrss)", mb(rss_after_sweep)),
            ("peak RSS at the end (ru_maxrss)", mb(maxrss_bytes())),
            (
                "tracemalloc peak around sweep_run",
                f"{mb(traced_peak)} (that run took {traced_seconds.wall:.1f} s)"
                if traced_peak is not None
                else "skipped",
            ),
        ],
    )
    print_meter("Where the sweep's full pass spends its time (execute_wrapper)", meter_full, sweep_full.wall)
    print_meter("Where the sweep's no-op pass spends its time (execute_wrapper)", meter_noop, sweep_noop.wall)
    ok = (
        same
        and ref_runs_agree
        and not any(differences.values())
        and not sweep_noop_changed
        and not ref_noop_changed
        and untouched
    )
    if not ok:
        print("\nWARNING: the sweep and the reference do not agree (see the checks above)")
    if args.explain:
        explain_file = explain(n, batch_size, args.explain_batch or max(1, batches // 2))
        print(f"\nEXPLAIN ANALYZE plans: {explain_file}")
    actions.close()
    return 0 if ok else 1


def explain(n: int, batch_size: int, target: int) -> Path:
    """EXPLAIN ANALYZE the housekeeping phase and one batch, on the state the measurements
    left (every loan with DPD >= 1 has its case): the batch's own cases are removed first,
    so the batch is a full-pass batch with all the other cases live (the last batch of a
    full pass), then it runs again as a no-op batch."""
    from django.db import connection

    sweep_batch = sweep_module().sweep_batch
    out = ROOT / "bench" / "results" / f"escalation_explain_{n}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    lo, hi = (target - 1) * batch_size + 1, target * batch_size
    sql("SET session_replication_role = replica")  # the append-only trigger refuses the DELETE of events
    try:
        sql(
            "DELETE FROM cases_caseevent WHERE case_id IN (SELECT id FROM cases_case WHERE loan_id BETWEEN %s AND %s)",
            [lo, hi],
        )
        sql("DELETE FROM cases_case WHERE loan_id BETWEEN %s AND %s", [lo, hi])
    finally:
        sql("SET session_replication_role = DEFAULT")
    lines = []
    runs = (
        ("housekeeping phase (all cases)", {"lo": None, "hi": None, "loans": False, "now": NOW}),
        (f"full-pass batch {target} (loans {lo}..{hi})", {"lo": lo, "hi": hi, "housekeeping": False, "now": NOW}),
        (f"no-op batch {target}", {"lo": lo, "hi": hi, "housekeeping": False, "now": NOW_SECOND_PASS}),
    )
    for title, kwargs in runs:
        explainer = Explainer()
        with connection.execute_wrapper(explainer), measure() as timing:
            sweep_batch(as_of=AS_OF, **kwargs)
        print(f"\nEXPLAIN ANALYZE, {title} (run with EXPLAIN took {timing.wall:.2f} s)")
        for label, ms, _, _ in explainer.plans:
            print(f"  {label[:50]:<50} {ms:>10.2f} ms")
        lines.append(f"######## {title} ########\n")
        for label, ms, statement, plan in explainer.plans:
            lines.append(f"==== {label} ({ms:.2f} ms)\n{' '.join(statement.split())}\n\n{plan}\n\n")
    out.write_text("".join(lines))
    return out


if __name__ == "__main__":
    sys.exit(main())
