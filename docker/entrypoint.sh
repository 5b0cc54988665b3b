#!/bin/sh
# Entry point of the image (Dockerfile ENTRYPOINT). Runs docker/prestart.py, which waits
# until the database accepts connections and, when RUN_MIGRATIONS=1 (the web service in
# docker-compose.yml), applies migrations, then replaces itself with the command
# (gunicorn, a Celery worker or beat) so that it receives the container's signals.
#
#   WAIT_FOR_DB=0        skip the wait (and the migrations), e.g. for `manage.py check`
#   DB_WAIT_TIMEOUT=60   seconds to wait for the database before giving up
#   RUN_MIGRATIONS=1     run `manage.py migrate --noinput` before the command
set -eu

if [ "${WAIT_FOR_DB:-1}" = "1" ]; then
    python /app/docker/prestart.py
fi

exec "$@"
