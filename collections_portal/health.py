"""GET /healthz: can this process reach PostgreSQL and the Celery broker?

For load balancers and the container runtime: no login, no session, no redirect to HTTPS
(settings/production.py exempts it), and not logged when healthy (it is polled every few
seconds; gunicorn's access log skips it too, see collections_portal.logging). 200 when every
check passes, 503 otherwise, with one entry per check:

    {"status": "ok", "checks": {"database": {"ok": true, "ms": 1.2}, "broker": {"ok": true, "ms": 0.8}}}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from collections_portal.celery import app

logger = logging.getLogger(__name__)
# A broker that does not answer within this many seconds counts as down: the caller (a
# load balancer) has its own timeout, and a slow answer is as bad as none.
BROKER_TIMEOUT = 2


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT)
        if conn.transport_cls == "redis" or conn.transport.driver_type == "redis":
            # ensure_connection on the Redis transport only builds the client: ask Redis itself.
            cast(Any, conn.default_channel).client.ping()


CHECKS: dict[str, Callable[[], None]] = {"database": check_database, "broker": check_broker}


def run_checks() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    healthy = all(result["ok"] for result in checks.values())
    if healthy:
        logger.debug("health check passed: %s", checks)
    else:
        logger.warning("health check failed: %s", {name: r for name, r in checks.items() if not r["ok"]})
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
