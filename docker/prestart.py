"""Run by docker/entrypoint.sh before the container's command.

1. Wait until the database accepts connections (at most DB_WAIT_TIMEOUT seconds, 60 by
   default), so a container that starts before PostgreSQL is ready does not crash.
2. When RUN_MIGRATIONS=1, apply migrations (`manage.py migrate --noinput`). On PostgreSQL
   this holds an advisory lock, so several web containers started at once migrate one
   after the other instead of racing each other.
"""

import os
import sys
import time
from pathlib import Path

# Run as a script (python /app/docker/prestart.py): put the project, not docker/, on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.core.management import call_command
from django.db import connection
from django.db.utils import OperationalError

# Any fixed number, the same in every container: the key of the migration lock.
MIGRATION_LOCK_KEY = 7_341_020_001


def wait_for_database(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection.ensure_connection()
            return
        except OperationalError as exc:
            if time.monotonic() >= deadline:
                sys.exit(f"prestart: the database is not reachable after {timeout:.0f} s: {exc}")
            sys.stderr.write(f"prestart: waiting for the database ({str(exc).strip().splitlines()[0]})\n")
            connection.close()
            time.sleep(1)


def migrate() -> None:
    locked = connection.vendor == "postgresql"
    if locked:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
    try:
        call_command("migrate", interactive=False)
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])


def main() -> None:
    django.setup()
    wait_for_database(float(os.environ.get("DB_WAIT_TIMEOUT", "60")))
    if os.environ.get("RUN_MIGRATIONS", "0") == "1":
        migrate()
    connection.close()


if __name__ == "__main__":
    main()
