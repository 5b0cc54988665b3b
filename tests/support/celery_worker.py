"""A real Celery worker in a subprocess, on the real Redis, against the test database.

Tests that need it must use a transactional database (the worker is another process and
only sees committed rows).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def celery_worker(*, extra_env: dict[str, str] | None = None, concurrency: int = 1):
    """Start a worker consuming a queue of its own; yields the queue name."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        **(extra_env or {}),
    }
    log = ROOT / "test-artifacts" / f"worker-{queue}.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "collections_portal", "worker",
                "-Q", queue, "-c", str(concurrency), "--pool", "prefork", "-l", "info",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_ready(process, log)
            yield queue
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The Celery worker exited early:\n{log.read_text()[-3000:]}")
        if "ready." in log.read_text():
            return
        time.sleep(0.2)
    raise RuntimeError(f"The Celery worker did not start in {timeout}s:\n{log.read_text()[-3000:]}")


def wait_for(predicate, *, timeout: float = 30, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Condition not met within {timeout}s")
