"""Benchmark of the people's pages at 10,000 and at 1,000,000 cases, in the same run.

    .venv/bin/python bench/pages.py [--small 10000] [--large 1000000] [--requests 300] [--concurrency 8]

Issue 5's target: p95 at 1,000,000 cases at most 2 x p95 at 10,000 for every page.

Works in its own scratch database (``collections_bench_pages`` on 127.0.0.1, created and
migrated if missing, with the test settings). It

1. builds ``--small`` cases server-side (``INSERT ... SELECT generate_series``): a borrower,
   a loan with two installments and a case per id, days past due spread over 1..200, each
   case in the stage its DPD reaches (a third of those past 90 waiting for approval of
   litigation, the rest in it), a tenth resolved, one in twenty on hold; 50 collectors
   sharing the cases; per case an "opened" and a "stage changed" event, and for some a
   contact attempt, a promise and a payment in the last 30 days;
2. recounts the dashboard's summary rows (``dashboard_refresh``, timed: it runs every
   15 minutes in production) and VACUUM ANALYZEs (autovacuum is off on the dev server);
3. starts gunicorn (``--workers``, default 2, as deployed on the 2-CPU host) on the scratch
   database, logs a supervisor and a collector in through the login form, and sends
   ``--requests`` GETs to each page from ``--concurrency`` client threads (keep-alive
   connections, after a warm-up), recording each response time; every response must be 200;
4. grows the same tables to ``--large`` cases with the same generator (ids small+1..large),
   refreshes, analyzes, restarts gunicorn and measures again;
5. prints p50 and p95 per page and size, and the ratio p95(large) / p95(small) per page.

Pages: the supervisor dashboard (default range: the last 30 days), the team case list (page
one, unfiltered and filtered by stage), the approvals waiting, and the collector's queue
and a case page (issue 5 part A).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/collections_bench_pages"
COLLECTORS = 50
PASSWORD = "bench-pass-word-1"
MAX_DPD = 200
TARGET_RATIO = 2.0
# Bump when the generated data change, so that a stale scratch database is rebuilt.
DATA_VERSION = 1


# --- setup --------------------------------------------------------------------------------------


def setup_django(db_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "collections_portal.settings.test"
    os.environ["DATABASE_URL"] = db_url
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
    conn = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
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


# --- data ---------------------------------------------------------------------------------------

# Days past due of case g: 1..200, each value once per 201 ids, scattered over the ids.
DPD = f"(1 + mod(g::bigint * 48271, {MAX_DPD}))::int"
AMOUNT = "(500 + mod(g, 50) * 10)"

BUILD_SQL = [
    """
    INSERT INTO cases_borrower (id, external_id, name, phone, email, language, timezone, national_id,
                                consent_sms, consent_email, sms_opt_out, email_opt_out, created_at, updated_at)
    SELECT g, 'PB' || lpad(g::text, 9, '0'), 'Bench borrower ' || g, '+86139' || lpad(g::text, 8, '0'),
           '', CASE WHEN mod(g, 2) = 0 THEN 'zh-hans' ELSE 'en' END, 'Asia/Shanghai', '', TRUE, TRUE, FALSE, FALSE,
           %(now)s, %(now)s
    FROM generate_series(%(lo)s, %(hi)s) g
    """,
    f"""
    INSERT INTO cases_loan (id, external_id, borrower_id, principal, currency, disbursed_on, product, created_at)
    SELECT g, 'PL' || lpad(g::text, 9, '0'), g, 2 * {AMOUNT}, 'CNY', %(as_of)s::date - {DPD} - 60, 'bench', %(now)s
    FROM generate_series(%(lo)s, %(hi)s) g
    """,
    f"""
    INSERT INTO cases_installment (id, loan_id, sequence, due_date, amount, paid_amount)
    SELECT 2 * g - 2 + s, g, s, %(as_of)s::date - {DPD} + 30 * (s - 1), {AMOUNT}, 0
    FROM generate_series(%(lo)s, %(hi)s) g CROSS JOIN generate_series(1, 2) s
    """,
    # The case: resolved one in ten, on hold one in twenty, past 90 days a third waiting for
    # approval of litigation. Stage by the thresholds of the default rules.
    f"""
    INSERT INTO cases_case (id, loan_id, stage_id, pending_stage_id, status, days_past_due, outstanding,
                            overdue_amount, assigned_to_id, priority, opened_at, stage_entered_at, stage_entered_on,
                            repeat_count, resolved_at, updated_at, approval_requested_at)
    SELECT g, g,
           CASE WHEN d >= 91 AND NOT waiting THEN %(litigation)s WHEN d >= 31 THEN %(third_party)s
                WHEN d >= 8 THEN %(phone)s WHEN d >= 4 THEN %(reminder)s ELSE %(warning)s END,
           CASE WHEN waiting THEN %(litigation)s END,
           CASE WHEN resolved THEN 'resolved' WHEN waiting THEN 'awaiting_approval'
                WHEN mod(g, 20) = 1 THEN 'on_hold' ELSE 'open' END,
           CASE WHEN resolved THEN 0 ELSE d END,
           CASE WHEN resolved THEN 0 ELSE 2 * {AMOUNT} END,
           CASE WHEN resolved THEN 0 ELSE {AMOUNT} END,
           (%(collectors)s::int[])[1 + mod(g, {COLLECTORS})],
           d, %(now)s - make_interval(days => d), %(now)s - make_interval(days => mod(d, 30)),
           %(as_of)s::date - mod(d, 30), 0,
           CASE WHEN resolved THEN %(now)s - make_interval(days => mod(g, 30)) END,
           %(now)s, CASE WHEN waiting THEN %(now)s - make_interval(days => d - 91) END
    FROM (SELECT g, {DPD} AS d, mod(g, 10) = 5 AS resolved,
                 {DPD} >= 91 AND mod(g, 3) = 0 AND mod(g, 10) <> 5 AS waiting
          FROM generate_series(%(lo)s, %(hi)s) g) c
    """,
    """
    INSERT INTO cases_caseevent (case_id, at, kind, actor_id, detail)
    SELECT c.id, CASE WHEN k = 1 THEN c.opened_at ELSE c.stage_entered_at END,
           CASE WHEN k = 1 THEN 'opened' ELSE 'stage_changed' END, NULL, '{}'::jsonb
    FROM cases_case c CROSS JOIN generate_series(1, 2) k
    WHERE c.id BETWEEN %(lo)s AND %(hi)s
    """,
    """
    INSERT INTO cases_contactattempt (case_id, channel, outcome, connected, note, attempted_at, collector_id)
    SELECT c.id, 'phone', CASE WHEN mod(c.id, 3) = 0 THEN 'right_party_contact' ELSE 'no_answer' END,
           mod(c.id, 3) = 0, '', %(now)s - make_interval(days => mod(c.id, 30)::int, hours => mod(c.id, 8)::int),
           c.assigned_to_id
    FROM cases_case c WHERE c.id BETWEEN %(lo)s AND %(hi)s AND mod(c.id, 5) = 0
    """,
    """
    INSERT INTO cases_promisetopay (case_id, amount, due_date, status, created_at, created_by_id)
    SELECT c.id, 100, %(as_of)s::date + 7, 'pending', %(now)s - make_interval(days => mod(c.id, 30)::int),
           c.assigned_to_id
    FROM cases_case c WHERE c.id BETWEEN %(lo)s AND %(hi)s AND mod(c.id, 10) = 7 AND c.status = 'open'
    """,
    """
    INSERT INTO cases_payment (external_id, loan_id, amount, paid_at, unallocated, recorded_at)
    SELECT 'PP' || lpad(c.id::text, 9, '0'), c.loan_id, 100, %(now)s - make_interval(days => mod(c.id, 20)::int), 0,
           %(now)s
    FROM cases_case c WHERE c.id BETWEEN %(lo)s AND %(hi)s AND mod(c.id, 10) = 3
    """,
]


def users() -> tuple[object, object, list[int]]:
    from django.contrib.auth.models import Group

    from accounts.models import User

    def person(username: str, group: str):
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(PASSWORD)
            user.save()
            user.groups.add(Group.objects.get(name=group))
        return user

    supervisor = person("bench-supervisor", "supervisor")
    collectors = [person(f"bench-collector-{n:02d}", "collector") for n in range(COLLECTORS)]
    return supervisor, collectors[0], [c.pk for c in collectors]


def stage_ids() -> dict[str, int]:
    from cases.models import Stage

    return dict(Stage.objects.values_list("code", "pk"))


def case_count() -> int:
    return sql("SELECT count(*) FROM cases_case", fetch=True)[0][0]


def build(lo: int, hi: int, *, as_of: dt.date, now: dt.datetime, collector_ids: list[int]) -> float:
    started = time.perf_counter()
    params = {"lo": lo, "hi": hi, "as_of": as_of, "now": now, "collectors": collector_ids, **stage_ids()}
    # Consistent by construction: skip the per-row foreign-key triggers.
    sql("SET session_replication_role = replica")
    try:
        for statement in BUILD_SQL:
            sql(statement, params)
    finally:
        sql("SET session_replication_role = DEFAULT")
    for table in ("cases_borrower", "cases_loan", "cases_installment", "cases_case", "cases_caseevent",
                  "cases_contactattempt", "cases_promisetopay", "cases_payment"):  # fmt: skip
        sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))")
    return time.perf_counter() - started


def empty() -> None:
    sql(
        "TRUNCATE cases_borrower, cases_loan, cases_installment, cases_case, cases_caseevent, cases_contactattempt, "
        "cases_promisetopay, cases_payment, cases_stagesnapshot, cases_casemonthbucket, cases_bucketroll, "
        "cases_dailyactivity, cases_collectorday, cases_dashboardrefresh RESTART IDENTITY CASCADE"
    )


def refresh_and_analyze(as_of: dt.date) -> tuple[float, float]:
    from cases.services.reporting import dashboard_refresh

    sql("VACUUM ANALYZE")
    started = time.perf_counter()
    # Two refreshes: the first of a new day writes the day's rows; what beat's every-15-
    # minute run costs is the second, which finds little to change.
    dashboard_refresh(as_of=as_of, days=30)
    first = time.perf_counter() - started
    started = time.perf_counter()
    dashboard_refresh(as_of=as_of)
    steady = time.perf_counter() - started
    sql("VACUUM ANALYZE")
    return first, steady


# --- the server and the client ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db_url: str, workers: int) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test",
            "LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/gunicorn"),
                "collections_portal.wsgi",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                "--keep-alive",
                "30",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start in 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def log_in(port: int, username: str) -> str:
    """Log in through the real form; returns the Cookie header of the session."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/accounts/login/")
    response = conn.getresponse()
    html = response.read().decode()
    cookies = dict(
        part.split(";", 1)[0].split("=", 1) for part in response.headers.get_all("Set-Cookie") or [] if "=" in part
    )
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    body = urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token, "next": "/"})
    conn.request(
        "POST",
        "/accounts/login/",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookies['csrftoken']}",
            "Referer": f"http://127.0.0.1:{port}/accounts/login/",
        },
    )
    response = conn.getresponse()
    response.read()
    for part in response.headers.get_all("Set-Cookie") or []:
        name, value = part.split(";", 1)[0].split("=", 1)
        cookies[name] = value
    if response.status != 302 or "sessionid" not in cookies:
        raise RuntimeError(f"login of {username} failed: HTTP {response.status}")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def measure(port: int, path: str, cookie: str, *, requests: int, concurrency: int, warmup: int) -> list[float]:
    """Response times (seconds) of ``requests`` GETs of ``path`` from ``concurrency`` threads."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [warmup + requests]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
                counted = remaining[0] < requests
            started = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                errors.append(f"{path}: HTTP {response.status}")
            elif counted:
                with lock:
                    times.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return times


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def pages(collector_case: int) -> list[tuple[str, str, str]]:
    """(label, role, path) of every page measured."""
    from django.urls import NoReverseMatch, reverse

    found = [
        ("dashboard", "supervisor", reverse("dashboard")),
        ("team list", "supervisor", reverse("team_cases")),
        ("team list, stage filter", "supervisor", reverse("team_cases") + "?stage=phone"),
        ("approvals", "supervisor", reverse("approvals")),
    ]
    for label, name, args in (("collector queue", "queue", ()), ("case page", "case-detail", (collector_case,))):
        try:
            found.append((label, "collector", reverse(name, args=args)))
        except NoReverseMatch:
            print(f"  ({label}: not built yet, skipped)")
    return found


def prepare(db_url: str, cases: int) -> dict:
    """In a process of its own (Django binds one database per process): build the scratch
    database to ``cases`` cases unless it already holds them, refresh the summary rows and
    analyze. Returns what the measuring process needs."""
    setup_django(db_url)
    from django.utils import timezone

    now = timezone.now()
    as_of = timezone.localdate(now)
    supervisor, collector, collector_ids = users()
    sql("CREATE TABLE IF NOT EXISTS bench_pages_meta (cases int, as_of date, version int)")
    built = sql("SELECT cases, as_of, version FROM bench_pages_meta", fetch=True)
    if built != [(cases, as_of, DATA_VERSION)] or case_count() != cases:
        empty()
        sql("DELETE FROM bench_pages_meta")
        # Batches of 200,000 keep each statement's memory and WAL moderate.
        seconds = 0.0
        for lo in range(1, cases + 1, 200_000):
            seconds += build(lo, min(cases, lo + 199_999), as_of=as_of, now=now, collector_ids=collector_ids)
        sql("INSERT INTO bench_pages_meta VALUES (%s, %s, %s)", [cases, as_of, DATA_VERSION])
        print(f"  built {cases:,} cases in {seconds:.1f} s", file=sys.stderr)
    first, steady = refresh_and_analyze(as_of)
    collector_case = sql(
        "SELECT min(id) FROM cases_case WHERE assigned_to_id = %s AND status = 'open'", [collector.pk], fetch=True
    )[0][0]
    return {
        "cases": case_count(),
        "refresh_first": first,
        "refresh_steady": steady,
        "supervisor": supervisor.username,
        "collector": collector.username,
        "pages": pages(collector_case),
    }


def database_url(base: str, suffix: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"{parts.path}_{suffix}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300, help="timed GETs per page and size")
    parser.add_argument("--rounds", type=int, default=10, help="alternations between the sizes per page")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per size")
    parser.add_argument("--db-url", default=os.environ.get("BENCH_PAGES_DATABASE_URL", DEFAULT_DB_URL))
    parser.add_argument("--prepare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        print(json.dumps(prepare(args.db_url, args.prepare)))
        return 0
    if not 0 < args.small < args.large:
        parser.error("--small must be positive and below --large")

    print(
        f"pages benchmark: {args.small:,} and {args.large:,} cases; {args.requests} GETs per page and size in "
        f"{args.rounds} alternating rounds, {args.concurrency} client threads, gunicorn x{args.workers} per size"
    )
    sizes = {"small": args.small, "large": args.large}
    info: dict[str, dict] = {}
    servers: dict[str, Server] = {}
    for name, cases in sizes.items():
        url = database_url(args.db_url, name)
        print(f"\npreparing {cases:,} cases in {urlsplit(url).path.lstrip('/')} ...", flush=True)
        output = subprocess.run(
            [sys.executable, __file__, "--prepare", str(cases), "--db-url", url],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        sys.stdout.write(output.stderr)
        info[name] = json.loads(output.stdout.strip().splitlines()[-1]) | {"url": url}
        print(
            f"  {info[name]['cases']:,} cases; dashboard_refresh: first of the day (30 days) "
            f"{info[name]['refresh_first']:.2f} s, then every 15 min (2 days) {info[name]['refresh_steady']:.2f} s",
            flush=True,
        )
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for name in sizes:
            servers[name] = Server(info[name]["url"], args.workers)
            port = servers[name].port
            info[name]["cookies"] = {
                "supervisor": log_in(port, info[name]["supervisor"]),
                "collector": log_in(port, info[name]["collector"]),
            }
        per_round = max(1, args.requests // args.rounds)
        print()
        for index, (label, _role, _path) in enumerate(info["small"]["pages"]):
            times: dict[str, list[float]] = {name: [] for name in sizes}
            # Alternate the sizes, so that load from elsewhere on the machine hits both alike.
            for round_number in range(args.rounds):
                for name in sizes:
                    _label, role, path = info[name]["pages"][index]
                    times[name] += measure(
                        servers[name].port,
                        path,
                        info[name]["cookies"][role],
                        requests=per_round,
                        concurrency=args.concurrency,
                        warmup=args.warmup if round_number == 0 else 0,
                    )
            results[label] = times
            print(
                f"  {label:<24}"
                + "".join(
                    f"  {sizes[n]:>9,}: p50 {percentile(times[n], 50) * 1000:7.1f} ms, "
                    f"p95 {percentile(times[n], 95) * 1000:7.1f} ms"
                    for n in sizes
                ),
                flush=True,
            )
    finally:
        for server in servers.values():
            server.stop()

    print(f"\np95 at {args.large:,} / p95 at {args.small:,} cases (target at most {TARGET_RATIO:g}):")
    worst = 0.0
    for label, times in results.items():
        small, large = percentile(times["small"], 95), percentile(times["large"], 95)
        ratio = large / small
        worst = max(worst, ratio)
        verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
        print(f"  {label:<24} {small * 1000:7.1f} ms -> {large * 1000:7.1f} ms   ratio {ratio:5.2f}  {verdict}")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
