"""Benchmark of the REST API: 50 concurrent clients listing and filtering cases through a
real gunicorn server, at 10,000 cases and at 1,000,000 cases in the same run.

    .venv/bin/python bench/api.py [--small 10000] [--large 1000000] [--clients 50] [--seconds 20]

Works in its own scratch database (``collections_bench_api`` on 127.0.0.1, created and
migrated if missing, with the test settings; the helpers of bench/escalation.py do that).

1. builds ``--small`` cases server-side (``INSERT ... SELECT generate_series``: borrowers,
   loans, cases spread over every stage and status by days past due, holds on the held
   cases, collectors owning the phone-stage cases), VACUUM ANALYZE, and starts gunicorn
   (3 sync workers, as the Dockerfile runs it) on a free loopback port;
2. runs the load: ``--clients`` threads, each with its own API token, send a fixed mix of
   list requests (the whole list, stage and status, a DPD range, one loan, a collector's
   own queue, a supervisor's view of one collector, a deeper page) for ``--seconds``
   after a short warm-up, and records every latency and every non-200 answer;
3. grows the same tables to ``--large`` cases with the same distribution, VACUUM ANALYZE,
   and runs the same load against the same server;
4. prints p50/p95/p99 and throughput per size and per request kind, the ratio of the
   p95s (target: at most 2), the errors (target: none), and the plans of the list
   queries at the large size, to show that they are index-backed.

Throttling is raised out of the way for the run (``API_THROTTLE_RATE``): the load is 50
clients as fast as they can go, not a rate limit test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from escalation import setup_django, sql  # noqa: E402  (bench/escalation.py, reused as is)

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/collections_bench_api"
NOW = dt.datetime(2026, 6, 30, 1, 0, tzinfo=dt.UTC)
MAX_DPD = 200
COLLECTORS = 50
SUPERVISORS = 5
# Days past due of case g: spread over 1..200, the same shape at every size.
DPD_OF = f"(1 + mod(g::bigint * 48271, {MAX_DPD}))::int"
# 90 % open, 5 % on hold, 3 % awaiting approval, 2 % resolved; g / 200 so that the status
# does not follow the DPD (which repeats every 200 cases).
STATUS_OF = (
    "CASE WHEN mod(g / 200, 100) < 90 THEN 'open' WHEN mod(g / 200, 100) < 95 THEN 'on_hold' "
    "WHEN mod(g / 200, 100) < 98 THEN 'awaiting_approval' ELSE 'resolved' END"
)


# --- Data -------------------------------------------------------------------------------


def build_range(lo: int, hi: int, stage_ids: list[tuple[int, int]], collector_ids: list[int]) -> float:
    """Insert cases lo..hi (and their borrowers, loans and holds), ids equal to g."""
    started = time.perf_counter()
    stage_case = "CASE " + " ".join(
        f"WHEN {DPD_OF} >= {threshold} THEN {stage_id}" for threshold, stage_id in sorted(stage_ids, reverse=True)
    )
    stage_case += " END"
    phone_threshold, third_threshold = _phone_range(stage_ids)
    collectors = "ARRAY[" + ",".join(str(i) for i in collector_ids) + "]::bigint[]"
    params = {"lo": lo, "hi": hi, "now": NOW}
    statements = [
        """
        INSERT INTO cases_borrower (id, external_id, name, phone, email, language, timezone, national_id,
                                    consent_sms, consent_email, sms_opt_out, email_opt_out, created_at, updated_at)
        SELECT g, 'AB' || lpad(g::text, 9, '0'), 'API bench borrower ' || g, '+86138' || lpad(g::text, 8, '0'),
               '', 'zh-hans', 'Asia/Shanghai', '', TRUE, TRUE, FALSE, FALSE, %(now)s, %(now)s
        FROM generate_series(%(lo)s, %(hi)s) g
        """,
        """
        INSERT INTO cases_loan (id, external_id, borrower_id, principal, currency, disbursed_on, product, created_at)
        SELECT g, 'AL' || lpad(g::text, 9, '0'), g, 3000, 'CNY', DATE '2025-01-01', 'bench', %(now)s
        FROM generate_series(%(lo)s, %(hi)s) g
        """,
        f"""
        INSERT INTO cases_case (id, loan_id, stage_id, status, days_past_due, outstanding, overdue_amount, priority,
                                repeat_count, opened_at, updated_at, assigned_to_id)
        SELECT g, g, {stage_case}, {STATUS_OF}, {DPD_OF}, 300 + mod(g, 50) * 25, 300 + mod(g, 50) * 25,
               {DPD_OF}, 0, %(now)s - ({DPD_OF} || ' days')::interval, %(now)s,
               CASE WHEN {DPD_OF} >= {phone_threshold} AND {DPD_OF} < {third_threshold}
                    THEN ({collectors})[1 + mod(g / 200, {len(collector_ids)})] END
        FROM generate_series(%(lo)s, %(hi)s) g
        """,
        f"""
        INSERT INTO cases_hold (case_id, reason, note, starts_at, placed_by_id)
        SELECT g, 'dispute', 'bench', %(now)s, NULL
        FROM generate_series(%(lo)s, %(hi)s) g WHERE {STATUS_OF} = 'on_hold'
        """,
    ]
    sql("SET session_replication_role = replica")  # consistent by construction: skip FK triggers
    try:
        for statement in statements:
            sql(statement, params)
    finally:
        sql("SET session_replication_role = DEFAULT")
    for table in ("cases_borrower", "cases_loan", "cases_case", "cases_hold"):
        sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))")
    sql("VACUUM (ANALYZE) cases_borrower, cases_loan, cases_case, cases_hold")
    return time.perf_counter() - started


def _phone_range(stage_ids: list[tuple[int, int]]) -> tuple[int, int]:
    thresholds = sorted(threshold for threshold, _id in stage_ids)
    return thresholds[2], thresholds[3]  # phone collection: from the third stage to the fourth


def prepare_people() -> tuple[list[str], list[str], list[str], list[int]]:
    """Collectors and supervisors with API tokens; returns their tokens and usernames."""
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from accounts.models import User

    sql("TRUNCATE cases_borrower, cases_loan, cases_case, cases_hold, authtoken_token RESTART IDENTITY CASCADE")
    collectors, supervisors = [], []
    for role, count, into in (("collector", COLLECTORS, collectors), ("supervisor", SUPERVISORS, supervisors)):
        group = Group.objects.get(name=role)
        for n in range(count):
            user, _created = User.objects.get_or_create(username=f"bench-{role}-{n}")
            user.groups.add(group)
            into.append(user)
    collector_tokens = [Token.objects.create(user=u).key for u in collectors]
    supervisor_tokens = [Token.objects.create(user=u).key for u in supervisors]
    return collector_tokens, supervisor_tokens, [u.username for u in collectors], [u.pk for u in collectors]


# --- Server and load --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_url: str, port: int, workers: int) -> subprocess.Popen:
    (ROOT / "var").mkdir(exist_ok=True)
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="collections_portal.settings.test",
        DATABASE_URL=db_url,
        API_THROTTLE_RATE="100000000/minute",
        LOG_LEVEL="ERROR",
    )
    server = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "collections_portal.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        # Request warnings (401, 404) would drown the report: they go to a log file.
        stderr=open(ROOT / "var" / "bench_api_server.log", "w"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # Any answer will do (401 without a token): the workers are up.
            if requests.get(f"http://127.0.0.1:{port}/api/v1/cases/", timeout=30).status_code == 401:
                return server
        except requests.ConnectionError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        time.sleep(0.3)
    server.terminate()
    raise SystemExit("gunicorn did not answer within 60 s")


def request_mix(n_cases: int, collector_names: list[str]) -> list[tuple[str, str, dict]]:
    """(kind, token role, params) for one round; loans are drawn from the whole range."""
    return [
        ("all", "supervisor", {}),
        ("stage+status", "supervisor", {"stage": "phone", "status": "open"}),
        ("dpd range", "supervisor", {"min_dpd": 60, "max_dpd": 90}),
        ("one loan", "supervisor", {"loan": f"AL{random.randint(1, n_cases):09d}"}),
        ("own queue", "collector", {"status": "open"}),
        ("one collector", "supervisor", {"assigned_to": random.choice(collector_names), "status": "open"}),
        ("page 5", "supervisor", {"stage": "third_party", "page": 5}),
    ]


class Load:
    def __init__(self, base_url: str, collector_tokens, supervisor_tokens, collector_names, n_cases: int):
        self.base_url = base_url
        self.collector_tokens = collector_tokens
        self.supervisor_tokens = supervisor_tokens
        self.collector_names = collector_names
        self.n_cases = n_cases
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def client(self, index: int, until: float, record_after: float) -> None:
        session = requests.Session()
        collector_token = self.collector_tokens[index % len(self.collector_tokens)]
        supervisor_token = self.supervisor_tokens[index % len(self.supervisor_tokens)]
        step = index
        while time.monotonic() < until:
            mix = request_mix(self.n_cases, self.collector_names)
            kind, role, params = mix[step % len(mix)]
            step += 1
            token = collector_token if role == "collector" else supervisor_token
            started = time.perf_counter()
            try:
                response = session.get(
                    f"{self.base_url}/api/v1/cases/",
                    params=params,
                    headers={"Authorization": f"Token {token}"},
                    timeout=60,
                )
                ok = response.status_code == 200 and "results" in response.json()
                problem = None if ok else f"{kind}: HTTP {response.status_code} {response.text[:200]}"
            except Exception as exc:  # a refused connection or a timeout is an error of the run
                problem = f"{kind}: {exc!r}"
            elapsed = time.perf_counter() - started
            if time.monotonic() < record_after:
                continue
            with self.lock:
                if problem:
                    self.errors.append(problem)
                else:
                    self.latencies[kind].append(elapsed)

    def run(self, clients: int, seconds: float, warmup: float) -> float:
        start = time.monotonic()
        record_after = start + warmup
        until = record_after + seconds
        threads = [threading.Thread(target=self.client, args=(i, until, record_after)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - record_after


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(load: Load, elapsed: float) -> dict:
    everything = [v for values in load.latencies.values() for v in values]
    return {
        "requests": len(everything),
        "errors": len(load.errors),
        "rps": len(everything) / elapsed,
        "p50": percentile(everything, 50),
        "p95": percentile(everything, 95),
        "p99": percentile(everything, 99),
        "kinds": {kind: (len(v), percentile(v, 50), percentile(v, 95)) for kind, v in load.latencies.items()},
        "first_errors": load.errors[:5],
    }


# --- Plans ------------------------------------------------------------------------------


def explain_list_queries(collector_names: list[str], n_cases: int) -> list[tuple[str, str, bool]]:
    """EXPLAIN ANALYZE of the page and count queries the API sends for each request kind (past
    the exact-count limit the API adds an EXPLAIN without ANALYZE for the estimate)."""
    from django.db import connection

    from accounts.models import User
    from cases.api import CaseFilter, _case_queryset
    from cases.api_support import EXACT_COUNT_LIMIT

    supervisor = User.objects.get(username="bench-supervisor-0")
    collector = User.objects.get(username="bench-collector-0")
    rows = []
    for kind, role, params in request_mix(n_cases, collector_names):
        user = collector if role == "collector" else supervisor
        queryset = CaseFilter(
            {k: str(v) for k, v in params.items() if k != "page"}, queryset=_case_queryset(user)
        ).qs.order_by("id")
        offset = (int(params.get("page", 1)) - 1) * 50
        for label, query in (("page", queryset[offset : offset + 50]), ("count", None)):
            if query is None:
                # The count as the API's paginator sends it: exact up to the limit, no further.
                keys = queryset.order_by().values("pk")[: EXACT_COUNT_LIMIT + 1]
                compiled, args = keys.query.sql_with_params()
                statement = f"SELECT COUNT(*) FROM ({compiled}) subquery"
            else:
                statement, args = query.query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF) " + statement, args)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            seq_scan = "Seq Scan on cases_case" in plan
            rows.append((f"{kind} ({label})", plan, seq_scan))
    return rows


# --- Main -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers (the Dockerfile's 3)")
    parser.add_argument("--db-url", default=DEFAULT_DB_URL)
    parser.add_argument("--plans", action="store_true", help="print the full plan of every list query")
    args = parser.parse_args()

    setup_django(args.db_url)
    stage_ids = [
        (threshold, pk)
        for threshold, pk in sql("SELECT entry_dpd, id FROM cases_stage WHERE active ORDER BY entry_dpd", fetch=True)
    ]
    collector_tokens, supervisor_tokens, collector_names, collector_ids = prepare_people()

    results = {}
    server = None
    try:
        for lo, hi in ((1, args.small), (args.small + 1, args.large)):
            seconds = build_range(lo, hi, stage_ids, collector_ids)
            print(f"built cases {lo:,}..{hi:,} in {seconds:.1f} s")
            if server is None:
                port = free_port()
                server = start_server(args.db_url, port, args.workers)
            load = Load(f"http://127.0.0.1:{port}", collector_tokens, supervisor_tokens, collector_names, hi)
            elapsed = load.run(args.clients, args.seconds, args.warmup)
            results[hi] = summarize(load, elapsed)
            print(f"  {hi:>9,} cases: {results[hi]['requests']:,} requests, p95 {results[hi]['p95'] * 1000:.0f} ms")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)

    small, large = results[args.small], results[args.large]
    print(
        f"\nREST API list and filter: {args.clients} concurrent clients, {args.workers} gunicorn workers, "
        f"{args.seconds:.0f} s per size, {os.cpu_count()} CPUs"
    )
    print(f"  {'cases':>10} {'requests':>9} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for n, r in results.items():
        print(
            f"  {n:>10,} {r['requests']:>9,} {r['rps']:>7.0f} {r['p50'] * 1000:>7.0f} {r['p95'] * 1000:>7.0f} "
            f"{r['p99'] * 1000:>7.0f} {r['errors']:>6}"
        )
    print("\n  p95 per request kind (ms)")
    print(f"  {'kind':<16} {'at ' + format(args.small, ','):>12} {'at ' + format(args.large, ','):>14}")
    for kind in small["kinds"]:
        at_large = large["kinds"].get(kind, (0, 0, float("nan")))[2]
        print(f"  {kind:<16} {small['kinds'][kind][2] * 1000:>12.0f} {at_large * 1000:>14.0f}")
    ratio = large["p95"] / small["p95"]
    errors = small["errors"] + large["errors"]
    print(
        f"\n  p95 ratio {args.large:,} / {args.small:,}: {ratio:.2f} (target <= 2.00) "
        f"{'OK' if ratio <= 2 else 'MISSED'}; errors: {errors} {'OK' if not errors else 'FAILED'}"
    )
    for r in (small, large):
        for line in r["first_errors"]:
            print("   ", line)

    print(f"\n  List queries at {args.large:,} cases (EXPLAIN ANALYZE):")
    for label, plan, seq_scan in explain_list_queries(collector_names, args.large):
        top = plan.splitlines()
        time_line = next((line for line in top if "Execution Time" in line), "").strip()
        print(f"    {label:<26} {'SEQ SCAN' if seq_scan else 'index':<9} {time_line}")
        if args.plans:
            print("      " + "\n      ".join(top))
    return 0 if ratio <= 2 and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
