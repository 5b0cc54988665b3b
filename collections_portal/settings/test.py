"""The test suite: always PostgreSQL and Redis, never SQLite (CONTRACT section 1)."""

import os

# The defaults must be in place before base.py reads the environment.
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/collections")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")

from .base import *  # noqa: F403
from .base import DATABASES, env

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    raise RuntimeError("The test suite runs on PostgreSQL only: set DATABASE_URL to a postgres:// URL.")

# One test database per pytest process, so two suites (a developer's and CI's, or two
# worktrees) never drop each other's database. Set TEST_DATABASE_NAME to pin it.
DATABASES["default"]["TEST"] = {
    "NAME": env.str("TEST_DATABASE_NAME", default=f"test_{DATABASES['default']['NAME']}_{os.getpid()}"),
}

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="test-only-key-0123456789-abcdefghijklmnopqrstuvwxyz")
ALLOWED_HOSTS = ["*"]
# Fast hashing: tests create many users and never need a strong hash.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# In-memory by default; a test that starts a worker process pointed at the loopback Twilio
# or SMTP server passes SMS_BACKEND / EMAIL_URL in the worker's environment.
SMS_BACKEND = env.str("SMS_BACKEND", default="locmem")
if not env.str("EMAIL_URL", default=""):
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Serve static files straight from the app folders: no collectstatic needed (and no
# warning about a missing STATIC_ROOT) outside production.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
