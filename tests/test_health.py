"""GET /healthz: PostgreSQL and the broker, 200 or 503 with one JSON entry per check, no
login, never redirected to HTTPS, not logged when healthy."""

import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
from django.urls import reverse

from tests.support.celery_worker import test_database_url as worker_database_url
from tests.support.celery_worker import wait_for
from tests.support.redis_server import RedisServer, celery_broker, free_port

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_broker():
    """The Celery app pointed at a Redis of this test's own (the shared one is never stopped)."""
    server = RedisServer(appendonly=False).start()
    try:
        with celery_broker(server.url):
            yield server
    finally:
        server.stop()


def test_it_answers_200_when_everything_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "no-cache" in response["Cache-Control"]


def test_it_needs_no_login_and_reverses(client):
    assert reverse("healthz") == "/healthz"
    assert "_auth_user_id" not in client.session
    assert client.get("/healthz").status_code == 200


def test_it_answers_503_naming_the_broker_when_redis_is_down(client, private_broker):
    assert client.get("/healthz").status_code == 200
    private_broker.kill()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["broker"]["ms"] < 10_000
    private_broker.start()
    assert client.get("/healthz").status_code == 200


def test_it_refuses_other_methods(client):
    assert client.post("/healthz").status_code == 405


def test_a_healthy_check_logs_nothing_at_info(client, caplog):
    with caplog.at_level(logging.INFO):
        client.get("/healthz")
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_access_log_skips_healthy_checks(tmp_path):
    """A real gunicorn with the logger class docker-compose.yml gives it."""
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test",
        "DATABASE_URL": worker_database_url(),
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "collections_portal.wsgi:application", f"--bind=127.0.0.1:{port}",
            "--workers=1", "--logger-class=collections_portal.logging.GunicornLogger", f"--access-logfile={access_log}",
        ],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _get(base + "/healthz") == 200, timeout=30)
        assert _get(base + "/accounts/login/") == 200
        assert _get(base + "/healthz") == 200
        wait_for(lambda: "/accounts/login/" in access_log.read_text(), timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=20)
    lines = access_log.read_text().splitlines()
    assert any("/accounts/login/" in line for line in lines)
    assert not any("/healthz" in line for line in lines), lines


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_the_private_broker_is_undone_afterwards(settings):
    from collections_portal.celery import app

    original = app.conf.broker_url
    with app.producer_or_acquire() as producer:  # the original broker's pools in use before
        assert producer.connection.as_uri().startswith("redis://")
    with celery_broker("redis://127.0.0.1:1/0"):
        assert app.conf.broker_url == "redis://127.0.0.1:1/0"
    assert app.conf.broker_url == original == settings.CELERY_BROKER_URL
    # ... and usable after: a task published to a queue of this test's own reaches Redis.
    queue = f"test-undo-{uuid.uuid4().hex[:8]}"
    app.send_task("cases.tasks.rebalance_collectors", queue=queue)
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        assert client.llen(queue) == 1
    finally:
        client.delete(queue)


def test_it_answers_503_naming_the_database_when_postgresql_is_unreachable():
    """A process whose database does not answer (nothing listens on the port)."""
    code = (
        "import django, json\ndjango.setup()\nfrom django.test import Client\n"
        "r = Client().get('/healthz')\nprint(r.status_code, json.dumps(r.json()['checks']))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "collections_portal.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    status, checks = result.stdout.strip().splitlines()[-1].split(" ", 1)
    checks = json.loads(checks)
    assert status == "503"
    assert checks["database"]["ok"] is False and "connect" in checks["database"]["error"].lower()
    assert checks["broker"]["ok"] is True
