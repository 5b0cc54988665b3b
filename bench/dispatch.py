"""Benchmark of SMS dispatch through real Celery workers against a plain twilio-client loop.

    .venv/bin/python bench/dispatch.py --messages 10000 [--concurrency 4] [--latency 0]

Works in its own scratch database (``collections_bench_dispatch`` on the server of
``DATABASE_URL``, default 127.0.0.1, created and migrated if missing, with the test
settings). It

1. empties the outbox and the case tables and builds, with a few set-based statements,
   N borrowers (one loan and one open case each, SMS consent, no opt-out, a time zone in
   which it is now mid-day so the quiet hours let everything go), one approved SMS
   template and N queued SMS outbox rows, one per borrower, so the per-borrower caps are
   never reached;
2. starts the loopback Twilio (``tests.support.twilio_server.TwilioServer``) in a thread of
   this process and one real Celery worker (``-c C``, prefork) on Redis, on a queue of its
   own, with ``SMS_BACKEND=twilio`` pointing at the loopback server;
3. (a) the portal: queues dispatch of every id exactly as ``enqueue_dispatch`` does (tasks
   of ``CHUNK`` ids) and times from there until every row is ``sent`` (polling the
   database; the end is the last ``sent_at``). Checks that the server saw exactly N
   creates, to N distinct numbers, the same as the outbox's;
4. (b) the baseline: the same N messages (numbers, bodies, sender, status callback) sent to
   the same server by C processes, each with its own ``twilio.rest.Client`` calling
   ``messages.create`` in a loop: no database, no broker, no policy;
5. prints both rates and the ratio portal / baseline.

The worker is stopped on exit (SIGTERM, then SIGKILL of its process group) and its
queue deleted from Redis. Only the scratch database is touched; its name must contain
"bench".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zoneinfo
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/collections"
DEFAULT_DATABASE = "collections_bench_dispatch"
BROKER_URL = "redis://127.0.0.1:6379/0"
STATUS_CALLBACK = "http://127.0.0.1:8000/webhooks/twilio/status/"
# Time zones with whole-hour offsets around the globe: the one where it is closest to
# mid-afternoon is used, so the 08:00-21:00 window stays open for hours.
ZONES = [
    "Pacific/Kiritimati", "Pacific/Auckland", "Australia/Brisbane", "Asia/Tokyo", "Asia/Shanghai",
    "Asia/Bangkok", "Asia/Dhaka", "Asia/Karachi", "Asia/Dubai", "Europe/Moscow", "Europe/Athens",
    "Europe/Paris", "Europe/London", "Atlantic/Azores", "America/Noronha", "America/Sao_Paulo",
    "America/Halifax", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
    "America/Anchorage", "Pacific/Honolulu", "Pacific/Pago_Pago",
]  # fmt: skip
TRUNCATED_TABLES = (
    "notifications_outboundmessage",
    "notifications_deliveryreceipt",
    "notifications_smsoptout",
    "notifications_messagetemplate",
    "cases_caseevent",
    "cases_hold",
    "cases_contact",
    "cases_case",
    "cases_loan",
    "cases_borrower",
)


# --- the scratch database --------------------------------------------------------------


def database_url(name: str) -> str:
    url = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    return urlunsplit(url._replace(path="/" + name))


def database_create(name: str) -> bool:
    """Create the scratch database unless it exists; True when it was created now."""
    import psycopg2

    url = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    connection = psycopg2.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or None,
        dbname="postgres",
    )
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction block
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone():
                return False
            cursor.execute(f'CREATE DATABASE "{name}"')
            return True
    finally:
        connection.close()


def in_window_zone(now: dt.datetime) -> tuple[str, dt.datetime]:
    """The zone where ``now`` is closest to 14:30 local time, and the local time there."""

    def distance(zone: str) -> float:
        local = now.astimezone(zoneinfo.ZoneInfo(zone))
        return abs(local.hour * 60 + local.minute - 14 * 60 - 30)

    zone = min(ZONES, key=distance)
    return zone, now.astimezone(zoneinfo.ZoneInfo(zone))


def build(n: int, zone: str) -> list[int]:
    """Empty the tables dispatch touches and queue N SMS to N borrowers; returns the ids."""
    from django.db import connection, transaction

    body = (
        "'Dear ' || b.name || ', the instalment of 250.00 CNY on loan ' || l.external_id || "
        "' is 3 days overdue. Please pay at https://pay.example.com or call 400-800-1234. Reply STOP to opt out.'"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(TRUNCATED_TABLES)} RESTART IDENTITY CASCADE")
        cursor.execute(
            """
            INSERT INTO notifications_compliancepolicy (id, window_start, window_end, sms_per_day, sms_per_week,
                call_attempts_per_week, connected_calls_per_day, promise_grace_days, updated_at)
            VALUES (1, '08:00', '21:00', 1, 3, 7, 3, 1, now())
            ON CONFLICT (id) DO UPDATE SET window_start = '08:00', window_end = '21:00', sms_per_day = 1,
                sms_per_week = 3, updated_at = now()
            """
        )
        cursor.execute(
            """
            INSERT INTO notifications_messagetemplate (name, channel, language, subject, body, html_body, approved,
                approved_at, active, updated_at, stage_id, approved_by_id)
            VALUES ('bench-dispatch-sms-en', 'sms', 'en', '', 'Dear {{ borrower_name }}, ...', '', true, now(), true,
                now(), NULL, NULL)
            RETURNING id
            """
        )
        template_id = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO cases_borrower (external_id, name, phone, email, language, timezone, national_id,
                consent_sms, consent_email, sms_opt_out, email_opt_out, created_at, updated_at)
            SELECT 'DB' || lpad(i::text, 8, '0'), 'Borrower ' || i, '+86138' || lpad(i::text, 8, '0'),
                'b' || i || '@example.com', 'en', %s, '', true, true, false, false, now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [zone, n],
        )
        cursor.execute(
            """
            INSERT INTO cases_loan (external_id, principal, currency, disbursed_on, product, created_at, borrower_id)
            SELECT 'DL' || lpad(b.id::text, 8, '0'), 3000.00, 'CNY', current_date - 33, '', now(), b.id
            FROM cases_borrower b ORDER BY b.id
            """
        )
        cursor.execute(
            """
            INSERT INTO cases_case (status, days_past_due, outstanding, overdue_amount, priority, opened_at,
                updated_at, loan_id, repeat_count)
            SELECT 'open', 3, 3000.00, 250.00, 0, now(), now(), l.id, 0 FROM cases_loan l ORDER BY l.id
            """
        )
        cursor.execute(
            f"""
            INSERT INTO notifications_outboundmessage (channel, "to", language, action, repeat_number,
                idempotency_key, subject, body, html_body, status, reason, scheduled_for, attempts, provider_id,
                error_code, error_message, created_at, updated_at, borrower_id, case_id, template_id, stage_id)
            SELECT 'sms', b.phone, 'en', 'sms', 0, 'bench:case:' || c.id || ':sms', '', {body}, '', 'queued', '',
                now(), 0, '', '', '', now(), now(), b.id, c.id, %s, NULL
            FROM cases_case c JOIN cases_loan l ON l.id = c.loan_id JOIN cases_borrower b ON b.id = l.borrower_id
            ORDER BY c.id
            """,
            [template_id],
        )
        cursor.execute("SELECT id FROM notifications_outboundmessage ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    with connection.cursor() as cursor:  # fresh statistics, as autovacuum would give a live table
        cursor.execute(f"ANALYZE {', '.join(TRUNCATED_TABLES)}")
    return ids


def status_counts() -> Counter:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM notifications_outboundmessage GROUP BY status")
        return Counter(dict(cursor.fetchall()))


# --- the Celery worker -----------------------------------------------------------------


def worker_start(*, queue: str, concurrency: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        process = subprocess.Popen(  # its own session, so the whole worker can be killed
            [
                sys.executable, "-m", "celery", "-A", "collections_portal", "worker",
                "-Q", queue, "-c", str(concurrency), "--pool", "prefork", "-l", "info",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The Celery worker exited early:\n{log.read_text()[-3000:]}")
        if " ready." in log.read_text():
            return process
        time.sleep(0.2)
    raise RuntimeError(f"The Celery worker did not start in 60 s:\n{log.read_text()[-3000:]}")


def worker_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # warm shutdown: the pool finishes its current tasks
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # the pool processes too, should any be left behind
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def queue_delete(queue: str) -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")


# --- (a) the portal ---------------------------------------------------------------------


def run_portal(ids: list[int], *, timeout: float, log: Path) -> float:
    """Queue dispatch as the portal does and wait until every row is sent; the seconds taken."""
    from django.db import connection

    from notifications.outbox import enqueue_dispatch

    n = len(ids)
    started = time.time()
    enqueue_dispatch(ids)
    queued_in = time.time() - started
    last_progress, last_sent, last_report = time.monotonic(), -1, time.monotonic()
    while True:
        counts = status_counts()
        sent = counts.get("sent", 0)
        if sent == n:
            break
        settled_otherwise = {s: c for s, c in counts.items() if s not in ("queued", "sending", "sent")}
        if settled_otherwise:
            raise RuntimeError(f"Messages settled other than sent: {dict(counts)}\n{log.read_text()[-3000:]}")
        now = time.monotonic()
        if sent != last_sent:
            last_progress, last_sent = now, sent
        elif now - last_progress > timeout:
            raise RuntimeError(f"No progress for {timeout:.0f} s: {dict(counts)}\n{log.read_text()[-3000:]}")
        if now - last_report >= 5:
            print(f"  ... {sent:,} / {n:,} sent after {time.time() - started:.1f} s", flush=True)
            last_report = now
        time.sleep(0.2)  # the end is read from sent_at, so polling need not be frequent
    with connection.cursor() as cursor:
        cursor.execute("SELECT extract(epoch FROM max(sent_at)) FROM notifications_outboundmessage")
        finished = float(cursor.fetchone()[0])
    print(f"  queued {math.ceil(n / chunk_size())} tasks in {queued_in:.2f} s", flush=True)
    return finished - started


def chunk_size() -> int:
    from notifications.tasks import CHUNK

    return CHUNK


# --- (b) the baseline -------------------------------------------------------------------


def baseline_child(twilio: dict[str, str], messages: list[tuple[str, str]], ready, start, results) -> None:
    """One baseline process: its own client, then messages.create in a loop."""
    from twilio.rest import Client

    client = Client(twilio["TWILIO_ACCOUNT_SID"], twilio["TWILIO_AUTH_TOKEN"])
    client.api.base_url = twilio["TWILIO_API_BASE_URL"]
    client.edge = client.region = None  # as the portal does for a non-Twilio host
    ready.put(os.getpid())
    start.wait()
    created, error = 0, ""
    try:
        for to, body in messages:
            client.messages.create(
                to=to, body=body, from_=twilio["TWILIO_FROM_NUMBER"], status_callback=STATUS_CALLBACK
            )
            created += 1
    except Exception as exc:  # reported by the parent, which would otherwise wait for this share
        error = repr(exc)
    results.put((created, time.time(), error))


def run_baseline(messages: list[tuple[str, str]], *, concurrency: int, twilio: dict[str, str]) -> float:
    context = multiprocessing.get_context("spawn")
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    shares = [messages[i::concurrency] for i in range(concurrency)]
    processes = [
        context.Process(target=baseline_child, args=(twilio, share, ready, start, results), daemon=True)
        for share in shares
    ]
    try:
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=60)
        started = time.time()
        start.set()
        outcomes = [results.get(timeout=600) for _ in processes]
        for process in processes:
            process.join(timeout=10)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
    created = sum(count for count, _, _ in outcomes)
    if created != len(messages):
        errors = "; ".join(error for _, _, error in outcomes if error)
        raise RuntimeError(f"The baseline created {created} of {len(messages)} messages: {errors}")
    return max(finished for _, finished, _ in outcomes) - started


# --- main ---------------------------------------------------------------------------------


def main(arguments: argparse.Namespace) -> int:
    if "bench" not in arguments.database:
        sys.exit(f"--database {arguments.database}: the name must contain 'bench'; this script empties its tables.")
    n, concurrency = arguments.messages, arguments.concurrency
    queue = f"bench-dispatch-{uuid.uuid4().hex[:10]}"
    url = database_url(arguments.database)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test",
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": BROKER_URL,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "SMS_BACKEND": "locmem",  # this process never sends; the worker does
        }
    )
    created = database_create(arguments.database)
    print(f"{'Created' if created else 'Reusing'} database {arguments.database}; migrating...", flush=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from tests.support.twilio_server import TwilioServer

    zone, local = in_window_zone(dt.datetime.now(dt.UTC))
    print(f"Building {n:,} queued SMS for borrowers in {zone} (local time {local:%H:%M})...", flush=True)
    began = time.perf_counter()
    ids = build(n, zone)
    print(f"  built in {time.perf_counter() - began:.1f} s", flush=True)

    server = TwilioServer(latency=arguments.latency).start()
    log = Path(tempfile.gettempdir()) / f"{queue}.log"
    worker_env = {
        **os.environ,
        **server.env(),
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }
    worker = None
    try:
        print(f"Starting a Celery worker (-c {concurrency}, prefork) on queue {queue}...", flush=True)
        worker = worker_start(queue=queue, concurrency=concurrency, env=worker_env, log=log)
        print(f"(a) portal: dispatching {n:,} messages...", flush=True)
        load_a = os.getloadavg()[0]
        portal_seconds = run_portal(ids, timeout=arguments.stall_timeout, log=log)
    finally:
        if worker is not None:
            worker_stop(worker)
        queue_delete(queue)

    creates_a = server.created
    from notifications.models import OutboundMessage

    outbox_numbers = set(OutboundMessage.objects.values_list("to", flat=True))
    destinations = Counter(request.to for request in creates_a)
    twice = sum(1 for count in destinations.values() if count > 1)
    check_ok = len(creates_a) == n and twice == 0 and set(destinations) == outbox_numbers
    statuses = status_counts()

    messages = list(OutboundMessage.objects.order_by("pk").values_list("to", "body"))
    print(f"(b) baseline: {n:,} messages.create calls from {concurrency} processes...", flush=True)
    load_b = os.getloadavg()[0]
    try:
        baseline_seconds = run_baseline(messages, concurrency=concurrency, twilio=server.env())
    finally:
        server.stop()
    creates_b = len(server.created) - len(creates_a)

    portal_rate, baseline_rate = n / portal_seconds, n / baseline_seconds
    ratio = portal_rate / baseline_rate
    print()
    print(
        f"SMS dispatch benchmark: N={n:,}, C={concurrency}, {os.cpu_count()} CPUs, "
        f"stub latency {arguments.latency * 1000:.0f} ms"
    )
    line = "{:<52} {:>9} {:>10} {:>15}"
    print(line.format("run", "seconds", "msg/s", "loadavg before"))
    print(
        line.format(
            f"(a) portal: Celery prefork -c {concurrency}",
            f"{portal_seconds:.2f}",
            f"{portal_rate:,.0f}",
            f"{load_a:.2f}",
        )
    )
    print(
        line.format(
            f"(b) baseline: {concurrency} processes, Client.messages.create",
            f"{baseline_seconds:.2f}",
            f"{baseline_rate:,.0f}",
            f"{load_b:.2f}",
        )
    )
    print(f"portal / baseline rate: {ratio:.2f} (target at N=10,000: >= 0.50)")
    print(
        f"check (a): {len(creates_a):,} creates (expected {n:,}), {len(destinations):,} distinct destinations, "
        f"{twice} sent twice, destinations {'=' if set(destinations) == outbox_numbers else '!='} outbox numbers, "
        f"outbox {dict(statuses)}: {'OK' if check_ok else 'FAILED'}"
    )
    print(f"check (b): {creates_b:,} creates (expected {n:,}): {'OK' if creates_b == n else 'FAILED'}")
    if check_ok:
        log.unlink(missing_ok=True)
    else:
        print(f"worker log: {log}")
    return 0 if check_ok and creates_b == n else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="queued SMS to dispatch (N)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker pool processes and baseline processes (C)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the loopback Twilio waits per request")
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="scratch database (name must contain 'bench')")
    parser.add_argument("--stall-timeout", type=float, default=60.0, help="give up after this long with no progress")
    sys.exit(main(parser.parse_args()))
