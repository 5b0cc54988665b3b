"""Settings shared by every environment.

Every value a deployment may change is read from the environment with django-environ
(an optional `.env` file at the project root is read first). CONTRACT section 2 lists
them; README.md explains each one.
"""

import datetime as dt
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "axes",
    "csp",
    # Project apps. `cases` is the core; `notifications` and `legal` build on it.
    "accounts",
    "cases",
    "notifications",
    "legal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in user's own language and time zone (after LocaleMiddleware, which it overrides).
    "accounts.middleware.UserPreferencesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: it turns a lockout flagged during the view into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "collections_portal.urls"
WSGI_APPLICATION = "collections_portal.wsgi.application"
ASGI_APPLICATION = "collections_portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs web, worker and beat against one SQLite file: wait for locks instead
    # of failing at once, and take the write lock at BEGIN so two writers never deadlock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Security (every environment, so that tests see what production does) --------------
# django-axes first: it refuses a locked-out username before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "collections_portal.security.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Lock a username from one address after this many failures, for this many minutes. Per
# (username, address) pair, so an attacker cannot lock a collector out from elsewhere.
AXES_FAILURE_LIMIT = env.int("DJANGO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("DJANGO_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Its start-up banner would open the output of every manage.py command.
AXES_VERBOSE = False
AXES_HTTP_RESPONSE_CODE = 429
# The login page again, with the (translated) lockout message instead of a bare text page.
AXES_LOCKOUT_CALLABLE = "collections_portal.security.lockout_response"
AXES_COOLOFF_MESSAGE = _("Too many failed login attempts. Please try again later.")
AXES_PERMALOCK_MESSAGE = _("Too many failed login attempts. Ask an administrator to unlock your account.")
# The client's address: REMOTE_ADDR, or behind a proxy the request header the proxy sets
# (e.g. X-Real-IP), named here. Only name a header your proxy overwrites: clients can send it too.
CLIENT_IP_HEADER = env.str("DJANGO_CLIENT_IP_HEADER", default="")
AXES_CLIENT_IP_CALLABLE = "collections_portal.security.client_ip"

# Idle sessions end: every request pushes the expiry forward, so a session lasts this
# many seconds after the user's last request (a workstation left unlocked logs out).
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# The admin's URL prefix: moving it off /admin/ takes it out of reach of blind scanners.
ADMIN_URL = env.str("DJANGO_ADMIN_PATH", default="admin/").strip("/") + "/"

# /metrics answers staff sessions, and Prometheus presenting `Authorization: Bearer <token>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Content-Security-Policy (django-csp 4): scripts only from our own origin, never inline,
# in every environment so that a test rendering a page with an inline script fails here
# and not in production. Inline *styles* stay allowed: Django admin and Swagger UI set
# style attributes, and a style cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation -------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# The business time zone: the collection day (and so days past due) turns over at
# midnight here. Borrowers' own zones only govern when messages may be sent to them.
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"

# --- Cache ----------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # No broker server on a laptop: kombu's filesystem transport passes messages through
    # files under var/broker, so `make run` starts a real worker and beat with no Redis.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # kombu keeps its exchange tables here; its default is ./control in the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # The transport polls its folder; kombu's default of one second made the demo's
        # queue of small dispatch tasks crawl at about one task a second.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task not acknowledged within this many seconds is handed to another worker.
        # It must exceed the longest task (a full sweep at a million cases), or a slow but
        # healthy task would run twice.
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600),
    }
CELERY_TASK_IGNORE_RESULT = True
# Tests give each worker a queue of its own; deployments normally keep the default.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Reliable delivery: acknowledge a task only after it ran, give it back to the queue if
# the worker dies mid-task, and let a worker hold one unacknowledged task at a time so a
# crash strands as little work as possible. Every task is written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection after every task, whatever
# CONN_MAX_AGE says, so a worker would open a connection per task (per chunk of 20
# messages in dispatch). It keeps one for this many tasks instead (0: a new one per task).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=200)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Email and SMS --------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="collections@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

SMS_BACKEND = env.str("SMS_BACKEND", default="console")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="https://api.twilio.com")
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: a request without credentials then gets 401 with WWW-Authenticate: Token.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "cases.api_support.ApiPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["cases.api_support.TokenRateThrottle"],
    # Requests per API token (per user for session logins); counted in the cache (Redis).
    "DEFAULT_THROTTLE_RATES": {"api": env.str("API_THROTTLE_RATE", default="600/minute")},
    "EXCEPTION_HANDLER": "cases.api_support.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Collections portal API",
    "DESCRIPTION": (
        "Loans, payments, cases, case work and the outbox. Authenticate with a session or "
        "`Authorization: Token KEY`; send an `Idempotency-Key` header with every POST to make retries safe."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Swagger UI from drf-spectacular-sidecar's static files: the docs work without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two choice sets are both called "channel": name them apart in the schema.
    "ENUM_NAME_OVERRIDES": {
        "ContactChannelEnum": "cases.models.ContactChannel",
        "MessageChannelEnum": "notifications.models.Channel",
    },
}

# --- Domain ---------------------------------------------------------------------------
# Rows per batch in bulk writes (CSV import, sweep). Large enough to amortise round
# trips, small enough that one batch's objects stay a few megabytes.
COLLECTIONS_BATCH_SIZE = env.int("COLLECTIONS_BATCH_SIZE", default=2000)
# Concurrent sweeps queue behind a PostgreSQL advisory lock. Correctness does not rely on
# it (every write is conditional); the concurrency test turns it off to prove that.
COLLECTIONS_SWEEP_LOCK = env.bool("COLLECTIONS_SWEEP_LOCK", default=True)
# Agencies and litigation (legal/). The limitation period (诉讼时效) runs from the later of
# the last payment and the last due date; the PRC Civil Code's general period is 3 years.
LIMITATION_PERIOD_YEARS = env.int("LIMITATION_PERIOD_YEARS", default=3)
# A placement with no payment for this many days is recalled from its agency automatically.
AGENCY_RECALL_DAYS = env.int("AGENCY_RECALL_DAYS", default=60)
# Demand letters and court documents: outside MEDIA_ROOT and never served by URL, only
# through the portal's permission-checked download view.
LEGAL_FILES_ROOT = VAR_DIR / "legal"

# Logs: `plain` lines for people, `json` (one object per line) for a log shipper; production
# defaults to json. Every record passes the phone-number mask on its way out, whoever wrote it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_phone_numbers": {"()": "collections_portal.logging.MaskPhoneNumbers"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "collections_portal.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.str("LOG_FORMAT", default="plain"),
            "filters": ["mask_phone_numbers"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # WeasyPrint (demand letters) logs every rendering step and fontTools every subset at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # twilio's client logs every request and response at INFO: thousands of lines in a
        # dispatch run, phone numbers included. Its warnings and errors still show.
        "twilio.http_client": {"level": "WARNING"},
    },
}
