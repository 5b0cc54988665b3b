"""Development and the `make run` demo: SQLite, console email and SMS, no broker server."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default="dev-only-insecure-key-change-me-in-production-0123456789",
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

# Serve static files straight from the app folders: no collectstatic needed (and no
# warning about a missing STATIC_ROOT) outside production.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
