"""bench/load.py's smoke mode runs end to end: data, gunicorn, locust, a sweep beside the load,
the lock watch and the summary (about 40 s). The million-case figures are in
docs/performance.md (Load); this only proves the script keeps working as the pages change."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("queue", "case page", "log contact (POST)", "dashboard")


def test_the_load_script_runs_small_with_no_error_and_no_stall():
    base = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/collections"))
    # A scratch database of this process (dropped at the end), and a private Redis for the
    # messages the sweep queues: parallel suites never share either.
    name = f"bench_load_smoke_{os.getpid()}"
    db_url = urlunsplit(base._replace(path=f"/{name}", query=""))
    try:
        with RedisServer(appendonly=False) as redis_server:
            result = subprocess.run(
                [
                    sys.executable,
                    "bench/load.py",
                    *("--cases", "2000", "--users", "8", "--seconds", "12", "--no-baseline", "--workers", "2"),
                    *("--db-url", db_url, "--redis-url", redis_server.url),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=240,
            )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        assert re.search(r"^errors: 0;.*no stall$", result.stdout, re.MULTILINE), output[-4000:]
        for page in PAGES:
            # "  queue   |  requests errors p50 p95": some requests, none failed.
            match = re.search(rf"^  {re.escape(page)}\s+\|\s+(\d+)\s+(\d+)\s", result.stdout, re.MULTILINE)
            assert match, f"no row for {page}:\n{result.stdout}"
            assert int(match.group(1)) > 0 and int(match.group(2)) == 0, match.group(0)
        assert "Escalation sweep for" in result.stdout or "stopped when the load phase ended" in result.stdout
    finally:
        conn = psycopg2.connect(urlunsplit(base._replace(path="/postgres", query="")))
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
