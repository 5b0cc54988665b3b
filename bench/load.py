"""Load run: locust (headless) against gunicorn on 1,000,000 cases while a sweep runs.

    .venv/bin/python bench/load.py [--cases 1000000] [--users 100] [--seconds 60] [--workers 3]
    .venv/bin/python bench/load.py --cases 20000 --users 20 --seconds 20      # smoke run

Issue 8, part 4. Works in its own scratch database (``collections_bench_load_<cases>`` on
127.0.0.1, created and migrated if missing, with the test settings), kept for reruns. It

1. builds ``--cases`` cases server-side with bench/pages.py's generator (borrowers, loans,
   installments, cases over every stage, events, contacts, promises, payments; 50
   collectors and a supervisor), unless the database already holds that build, then
   recounts the dashboard's summary rows and VACUUM ANALYZEs;
2. starts gunicorn (``--workers``) on it, with a Redis database of its own (``--redis-url``)
   as cache and broker, so the messages the sweep queues reach no one else's worker;
3. runs locust headless for ``--seconds`` with ``--users`` users (bench/load_locustfile.py):
   four in five are collectors opening their queue, one of their cases, and logging a
   contact (POST with the CSRF token); one in five is a supervisor on the dashboard. First
   without a sweep (the baseline; ``--no-baseline`` skips it), then again while
   ``manage.py escalate`` runs one full sweep for the next business date (every live case's
   days past due move by one, so the sweep has a million rows to rewrite on every rerun);
4. meanwhile samples ``pg_stat_activity`` every 0.2 s: any web backend waiting on a lock, and
   which backend blocks it (``pg_blocking_pids``); the sweep's connection is told apart by
   its ``application_name``. A web request may wait for a case row the sweep's current batch
   is rewriting (at most one batch's transaction); a table lock, a wait longer than the
   sweep's longest transaction or over ``--max-lock-wait`` (5 s) counts as a stall;
5. prints per page the request count, error count and p50/p95 with and without the sweep,
   the sweep's duration and summary, and the lock waits; exits non-zero on any error or stall.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import pages  # noqa: E402  (bench/pages.py: the data generator, users, gunicorn and login helpers)

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/collections_bench_load"
# A Redis database of its own: the sweep queues dispatch tasks there that no worker takes,
# and they are dropped after the run.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
SWEEP_APP = "load-sweep"
WEB_APP = "load-web"
CASES_PER_COLLECTOR = 2000  # spread the logged calls so that no case reaches a call cap
DATA_VERSION = 1


def with_app_name(db_url: str, name: str) -> str:
    parts = urlsplit(db_url)
    return urlunsplit(parts._replace(query=f"application_name={name}"))


# --- preparing the database (in a process of its own: Django binds one database per process) ---


def prepare(db_url: str, cases: int, rebuild: bool) -> dict:
    pages.setup_django(db_url)
    from django.utils import timezone

    now = timezone.now()
    as_of = timezone.localdate(now)
    supervisor, _collector, collector_ids = pages.users()
    pages.sql("CREATE TABLE IF NOT EXISTS bench_load_meta (cases int, built_on date, version int, swept_to date)")
    built = pages.sql("SELECT cases, version FROM bench_load_meta", fetch=True)
    if rebuild or built != [(cases, DATA_VERSION)]:
        pages.empty()
        pages.sql("TRUNCATE cases_sweeprun, notifications_outboundmessage, legal_placement, legal_legalmatter CASCADE")
        pages.sql("DELETE FROM bench_load_meta")
        seconds = 0.0
        for lo in range(1, cases + 1, 200_000):
            seconds += pages.build(lo, min(cases, lo + 199_999), as_of=as_of, now=now, collector_ids=collector_ids)
        pages.sql("INSERT INTO bench_load_meta VALUES (%s, %s, %s, %s)", [cases, as_of, DATA_VERSION, as_of])
        print(f"  built {cases:,} cases in {seconds:.1f} s", file=sys.stderr)
        pages.refresh_and_analyze(as_of)
    else:
        print("  reusing the database built before (--rebuild builds it again)", file=sys.stderr)
        pages.sql("VACUUM ANALYZE")
    swept_to = pages.sql("SELECT swept_to FROM bench_load_meta", fetch=True)[0][0]
    # The next business date: the sweep refuses an earlier one than its last run's, and a
    # new day moves every live case's days past due, so each rerun's sweep does full work.
    sweep_as_of = max(swept_to, as_of) + dt.timedelta(days=1)
    pages.sql("UPDATE bench_load_meta SET swept_to = %s", [sweep_as_of])
    rows = pages.sql(
        """
        SELECT u.username, array_agg(c.id ORDER BY c.id)
        FROM accounts_user u
        JOIN LATERAL (SELECT id FROM cases_case WHERE assigned_to_id = u.id AND status = 'open'
                      ORDER BY id LIMIT %s) c ON TRUE
        WHERE u.id = ANY(%s)
        GROUP BY u.username ORDER BY u.username
        """,
        [CASES_PER_COLLECTOR, collector_ids],
        fetch=True,
    )
    return {
        "cases": pages.case_count(),
        "sweep_as_of": sweep_as_of.isoformat(),
        "password": pages.PASSWORD,
        "supervisors": [supervisor.username],
        "collectors": [[username, ids] for username, ids in rows],
    }


# --- watching locks --------------------------------------------------------------------------


@dataclass
class LockWatch:
    db_url: str
    samples: int = 0
    web_waits: int = 0  # samples in which a web backend waited on a lock
    blocked_by_sweep: int = 0  # ... blocked by the sweep's backend
    table_locks: int = 0  # ... on a whole table (wait_event 'relation'), never expected
    longest_wait: float = 0.0
    longest_sweep_transaction: float = 0.0  # the sweep's batches, seen from outside
    examples: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import psycopg2

        conn = psycopg2.connect(self.db_url)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not self.stop.wait(0.2):
                    cur.execute(
                        """
                        SELECT w.pid, extract(epoch FROM now() - w.query_start), w.wait_event, left(w.query, 100),
                               EXISTS (SELECT 1 FROM pg_stat_activity b
                                       WHERE b.pid = ANY(pg_blocking_pids(w.pid)) AND b.application_name = %s)
                        FROM pg_stat_activity w
                        WHERE w.datname = current_database() AND w.application_name = %s
                          AND w.wait_event_type = 'Lock'
                        """,
                        [SWEEP_APP, WEB_APP],
                    )
                    rows = cur.fetchall()
                    cur.execute(
                        "SELECT extract(epoch FROM max(now() - xact_start)) FROM pg_stat_activity "
                        "WHERE application_name = %s AND xact_start IS NOT NULL",
                        [SWEEP_APP],
                    )
                    sweep_age = cur.fetchone()[0]
                    self.longest_sweep_transaction = max(self.longest_sweep_transaction, float(sweep_age or 0))
                    self.samples += 1
                    if rows:
                        self.web_waits += 1
                        self.blocked_by_sweep += any(row[4] for row in rows)
                        self.table_locks += any(row[2] == "relation" for row in rows)
                        self.longest_wait = max(self.longest_wait, *(float(row[1] or 0) for row in rows))
                        if len(self.examples) < 5:
                            self.examples += [f"{row[2]} by {'sweep' if row[4] else 'web'}: {row[3]}" for row in rows]
        finally:
            conn.close()


# --- locust ----------------------------------------------------------------------------------


@dataclass
class PageStats:
    requests: int
    failures: int
    p50: float
    p95: float
    per_second: float


def run_locust(*, host: str, plan: Path, users: int, seconds: int, think: str, out: Path) -> dict[str, PageStats]:
    prefix = out / "locust"
    result = subprocess.run(
        [
            str(ROOT / ".venv/bin/locust"),
            "-f",
            str(ROOT / "bench/load_locustfile.py"),
            "--headless",
            "--only-summary",
            "--users",
            str(users),
            "--spawn-rate",
            str(max(1, users // 5)),
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "10",
            "--host",
            host,
            "--csv",
            str(prefix),
            "--loglevel",
            "WARNING",
        ],
        env={**os.environ, "LOAD_PLAN": str(plan), "LOAD_THINK": think},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    stats: dict[str, PageStats] = {}
    with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            stats[row["Name"]] = PageStats(
                int(row["Request Count"]),
                int(row["Failure Count"]),
                float(row["50%"]),
                float(row["95%"]),
                float(row["Requests/s"]),
            )
    failures = Path(f"{prefix}_failures.csv").read_text(encoding="utf-8").strip().splitlines()[1:]
    for line in failures[:10]:
        print(f"  failure: {line}")
    if result.returncode not in (0, 1):  # 1 means "some requests failed", counted above
        sys.stdout.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise RuntimeError(f"locust exited with {result.returncode}")
    return stats


def swept_cases(db_url: str, since: dt.datetime) -> int:
    """Cases the sweep has rewritten (and committed) since it started."""
    import psycopg2

    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM cases_case WHERE updated_at >= %s", [since])
            return cur.fetchone()[0]
    finally:
        conn.close()


def start_sweep(db_url: str, as_of: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "manage.py", "escalate", "--as-of", as_of, "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": with_app_name(db_url, SWEEP_APP)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def print_table(phases: dict[str, dict[str, PageStats]]) -> int:
    names = sorted({name for stats in phases.values() for name in stats if name != "Aggregated"})
    header = f"  {'page':<22}" + "".join(f" | {phase:^34}" for phase in phases)
    print(header)
    print(f"  {'':<22}" + " | requests  errors  p50 ms   p95 ms" * len(phases))
    errors = 0
    for name in [*names, "Aggregated"]:
        line = f"  {name:<22}"
        for stats in phases.values():
            s = stats.get(name)
            if s is None:
                line += f" | {'-':^34}"
                continue
            errors += s.failures if name != "Aggregated" else 0
            line += f" | {s.requests:8,} {s.failures:7,} {s.p50:7.0f} {s.p95:8.0f}"
        print(line)
    print(
        "  throughput: "
        + ", ".join(f"{phase} {stats['Aggregated'].per_second:.1f} requests/s" for phase, stats in phases.items())
    )
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60, help="length of each load phase")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument(
        "--max-lock-wait", type=float, default=5.0, help="seconds a web request may wait on a row lock (default 5)"
    )
    parser.add_argument(
        "--sweep-wait", action="store_true", help="let the sweep finish after the load phase (else it is stopped)"
    )
    parser.add_argument(
        "--think", default="1,2", help="seconds each user waits between requests: MIN,MAX (default 1,2)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the load phase without a sweep")
    parser.add_argument("--rebuild", action="store_true", help="build the data again even if the database has them")
    parser.add_argument(
        "--db-url",
        default=os.environ.get("BENCH_LOAD_DATABASE_URL"),
        help="scratch database (default: collections_bench_load_<cases> on 127.0.0.1, one per size)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_LOAD_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--prepare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.db_url = args.db_url or f"{DEFAULT_DB_URL}_{args.prepare or args.cases}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="collections_portal.settings.test",
        REDIS_URL=args.redis_url,
        CELERY_BROKER_URL=args.redis_url,
        LOG_LEVEL="WARNING",
    )
    if args.prepare:
        print(json.dumps(prepare(args.db_url, args.prepare, args.rebuild)))
        return 0

    started = time.monotonic()
    print(
        f"load run: {args.cases:,} cases, {args.users} users for {args.seconds} s per phase, "
        f"gunicorn x{args.workers}, {os.cpu_count()} CPUs"
    )
    output = subprocess.run(
        [sys.executable, __file__, "--prepare", str(args.cases), "--db-url", args.db_url]
        + (["--rebuild"] if args.rebuild else []),
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    sys.stderr.write(output.stderr)
    plan = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"  {plan['cases']:,} cases; the sweep runs for business date {plan['sweep_as_of']}", flush=True)

    phases: dict[str, dict[str, PageStats]] = {}
    watches: dict[str, LockWatch] = {}
    server = pages.Server(with_app_name(args.db_url, WEB_APP), args.workers)
    sweep_seconds = 0.0
    sweep_output = ""
    sweep_overlap = ""
    try:
        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
            plan_file = Path(tmp) / "plan.json"
            plan_file.write_text(json.dumps(plan), encoding="utf-8")
            host = f"http://127.0.0.1:{server.port}"
            runs = ([] if args.no_baseline else ["without sweep"]) + ["during sweep"]
            for phase in runs:
                out = Path(tmp) / phase.replace(" ", "-")
                out.mkdir()
                watch = watches[phase] = LockWatch(args.db_url)
                watcher = threading.Thread(target=watch.run, daemon=True)
                watcher.start()
                sweep = None
                if phase == "during sweep":
                    sweep_started = time.monotonic()
                    sweep_wall_start = dt.datetime.now(dt.UTC)
                    sweep = start_sweep(args.db_url, plan["sweep_as_of"])
                print(f"\n{phase}: {args.users} users for {args.seconds} s ...", flush=True)
                load_started = time.monotonic()
                phases[phase] = run_locust(
                    host=host, plan=plan_file, users=args.users, seconds=args.seconds, think=args.think, out=out
                )
                load_ended = time.monotonic()
                if sweep is not None:
                    stopped = False
                    if sweep.poll() is None and not args.sweep_wait:
                        # A full sweep of a million cases outlasts the load phase on a small
                        # machine; what matters is that the pages ran beside it. Its batches
                        # are committed one by one, so stopping it loses nothing: the next
                        # run's sweep (a later business date) carries on.
                        swept_during_load = swept_cases(args.db_url, sweep_wall_start)
                        sweep.send_signal(signal.SIGTERM)
                        stopped = True
                    sweep_output = sweep.communicate()[0]
                    sweep_ended = time.monotonic()
                    sweep_seconds = sweep_ended - sweep_started
                    overlap = min(sweep_ended, load_ended) - max(sweep_started, load_started)
                    sweep_overlap = f"{max(0.0, overlap):.0f} s of the {load_ended - load_started:.0f} s load phase"
                    if stopped:
                        sweep_output = (
                            f"stopped when the load phase ended, after rewriting {swept_during_load:,} cases "
                            f"({swept_during_load / sweep_seconds:,.0f} a second beside the load); "
                            "--sweep-wait lets it finish"
                        )
                    elif sweep.returncode:
                        print(sweep_output)
                        raise RuntimeError(f"the sweep failed with exit code {sweep.returncode}")
                watch.stop.set()
                watcher.join()
    finally:
        server.stop()
        import redis

        # The dispatch tasks the sweep queued: no worker takes them, so they go.
        redis.Redis.from_url(args.redis_url).flushdb()

    print(
        f"\nper page (response times in ms, locust's percentiles; {args.users} users, {args.seconds} s each, "
        f"{args.think.replace(',', '-')} s between a user's requests):"
    )
    errors = print_table(phases)
    print(f"\nsweep: {sweep_seconds:.1f} s, overlapping {sweep_overlap}")
    for line in sweep_output.strip().splitlines():
        print(f"  {line}")
    blocked = 0
    print("\nlock waits of web requests (pg_stat_activity every 0.2 s):")
    for phase, watch in watches.items():
        blocked += watch.blocked_by_sweep
        print(
            f"  {phase:<14} {watch.samples} samples: a web request waiting on a lock in {watch.web_waits}, "
            f"blocked by the sweep in {watch.blocked_by_sweep}, on a table lock in {watch.table_locks}; "
            f"longest wait seen {watch.longest_wait * 1000:.0f} ms; the sweep's longest transaction "
            f"{watch.longest_sweep_transaction * 1000:.0f} ms"
        )
        for example in watch.examples:
            print(f"    e.g. {example}")
    # A write to a case the sweep's current batch is rewriting (logging a contact locks the
    # case row) waits for that batch to commit: a transactionid wait, never longer than one
    # batch's transaction. A table lock, a wait longer than any batch (the sweep holding
    # rows across batches), or one over --max-lock-wait would stall the pages: they fail.
    table_locks = sum(watch.table_locks for watch in watches.values())
    longest = max(watch.longest_wait for watch in watches.values())
    longest_batch = max(watch.longest_sweep_transaction for watch in watches.values())
    # 0.2 s: the sampling interval, by which either figure may be off.
    stalled = table_locks > 0 or longest > args.max_lock_wait or longest > longest_batch + 0.2
    print(
        f"\nerrors: {errors}; samples with a web request blocked by the sweep: {blocked} (row locks of one batch), "
        f"on a table lock: {table_locks}; longest lock wait {longest * 1000:.0f} ms "
        f"(limits: the longest sweep transaction, {longest_batch * 1000:.0f} ms, and {args.max_lock_wait:g} s): "
        f"{'STALLED' if stalled else 'no stall'}"
    )
    print(f"total time {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")
    return 0 if errors == 0 and not stalled else 1


if __name__ == "__main__":
    sys.exit(main())
