# The production image: one image for the web (gunicorn), worker and beat services of
# docker-compose.yml. docs/deploy.md explains how to run it; tests/test_compose.py checks
# that this file, docker-compose.yml and .env.example agree with the settings.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gettext: msgfmt for compilemessages. fonts-noto-cjk: Chinese glyphs for the demand-letter
# PDFs; Pango and HarfBuzz's subsetter: WeasyPrint's system libraries (as scripts/ensure_pdf_deps.sh).
# tzdata: the IANA zones (business and borrower time zones) for zoneinfo.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext fonts-noto-cjk tzdata \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user; its home holds gunicorn's control socket.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. psycopg2-binary ships its
# own libpq, so no compiler or headers are needed.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Build-time only: the production settings need a secret key and allowed hosts to load.
# They are set for these commands alone and are not stored in the image; the containers
# get the real values from the environment (docker-compose.yml, .env).
RUN chmod 0755 docker/entrypoint.sh \
    && export DJANGO_SETTINGS_MODULE=collections_portal.settings.production \
        DJANGO_SECRET_KEY=build-only-not-a-secret DJANGO_ALLOWED_HOSTS=localhost \
    && python manage.py collectstatic --noinput \
    && if find . -path ./staticfiles -prune -o -name '*.po' -path '*/locale/*' -print | grep -q .; then \
        python manage.py compilemessages --ignore=staticfiles; \
    fi \
    && mkdir -p var/media \
    && chown -R app:app var

ENV DJANGO_SETTINGS_MODULE=collections_portal.settings.production

USER app

EXPOSE 8000

# Waits for the database; migrates first when RUN_MIGRATIONS=1 (the web service only).
ENTRYPOINT ["/app/docker/entrypoint.sh"]

# Health: docker-compose.yml probes GET /healthz (database and broker) with docker/healthcheck.py.
# Worker count: 2-4 per CPU core. --timeout: a request may take up to 60 s before its worker
# is replaced (long jobs belong in Celery). --max-requests recycles workers to bound memory.
CMD ["gunicorn", "collections_portal.wsgi:application", \
     "--bind", "0.0.0.0:8000", \
     "--workers", "3", \
     "--timeout", "60", \
     "--graceful-timeout", "30", \
     "--max-requests", "1000", \
     "--max-requests-jitter", "100", \
     "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-", \
     "--logger-class", "collections_portal.logging.GunicornLogger"]
