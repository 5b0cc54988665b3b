"""Check that the services the test suite needs are reachable; one clear line each if not.

Run by `make test` before pytest (and by tests/conftest.py), so a stopped PostgreSQL or
Redis gives one actionable sentence instead of a screen of stack traces.
"""

import os
import socket
import sys
from urllib.parse import urlparse

DEFAULTS = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/collections",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
HINTS = {
    "DATABASE_URL": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "REDIS_URL": 'start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}


def unreachable() -> list[str]:
    problems = []
    for name, default in DEFAULTS.items():
        url = urlparse(os.environ.get(name) or default)
        host, port = url.hostname or "127.0.0.1", url.port or (5432 if name == "DATABASE_URL" else 6379)
        try:
            with socket.create_connection((host, port), timeout=3):
                pass
        except OSError as exc:
            problems.append(f"{name}: cannot reach {host}:{port} ({exc.strerror or exc}); {HINTS[name]}")
    return problems


if __name__ == "__main__":
    problems = unreachable()
    for line in problems:
        print(f"make test: {line}", file=sys.stderr)
    sys.exit(1 if problems else 0)
