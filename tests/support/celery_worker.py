"""A real Celery worker in a subprocess, on the real Redis, against the test database.

Tests that need it must use a transactional database (the worker is another process and
only sees committed rows).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from collections_portal.celery import app

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def celery_worker(*, extra_env: dict[str, str] | None = None, concurrency: int = 1, queue: str | None = None):
    """Start a worker consuming a queue of its own; yields the queue name. Tasks this
    process sends by default go to that queue too while the worker runs."""
    queue = queue or f"test-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        **(extra_env or {}),
    }
    log = ROOT / "test-artifacts" / f"worker-{queue}.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        process = subprocess.Popen(  # its own session, so a test can kill the whole worker
            [
                sys.executable, "-m", "celery", "-A", "collections_portal", "worker",
                "-Q", queue, "-c", str(concurrency), "--pool", "prefork", "-l", "info",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{queue}@%h",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        previous = app.conf.task_default_queue
        app.conf.task_default_queue = queue
        try:
            _wait_ready(process, log)
            yield WorkerHandle(process=process, queue=queue, log=log)
        finally:
            app.conf.task_default_queue = previous
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass
class WorkerHandle:
    process: subprocess.Popen
    queue: str
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def __str__(self) -> str:
        return self.queue


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
