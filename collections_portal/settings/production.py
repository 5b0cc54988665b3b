"""Production: secrets and hosts come from the environment, with no defaults.

`manage.py check --deploy` passes with no warning on these settings (tests/test_deploy_check.py
runs it). The security settings shared with every environment (CSP, login throttling, idle
sessions, password validators, the admin's path) live in base.py; what is here needs HTTPS.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import LOGGING, env

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # no default: refuse to start without one
if not SECRET_KEY.strip():
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY to a long random value; it is empty.")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS --------------------------------------------------------------------------------
# Behind a TLS-terminating proxy Django sees plain HTTP; the proxy says the original scheme
# in this header. Trust it only behind a proxy that overwrites it (set the variable empty
# when clients reach gunicorn directly, or they could claim https themselves).
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="HTTP_X_FORWARDED_PROTO")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# The health check comes from inside the container over plain HTTP: never redirect it.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Logs ---------------------------------------------------------------------------------
# One JSON object per line, for a log shipper; LOG_FORMAT=plain for a human at a terminal.
LOGGING["handlers"]["console"]["formatter"] = env.str("LOG_FORMAT", default="json")
