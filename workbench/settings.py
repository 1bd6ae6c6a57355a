"""Settings for the workbench, read from the environment.

With nothing set, the workbench runs on SQLite in the project folder and runs
its jobs inline, so a laptop needs no server. ``DATABASE_URL`` selects
PostgreSQL and ``REDIS_URL`` sends jobs to RQ workers.
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def database_from_url(url: str) -> dict:
    """Turn ``postgres://user:pass@host:port/name?opt=val`` into a DATABASES
    entry. Only PostgreSQL and SQLite are supported."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()

    if scheme in {"postgres", "postgresql", "pgsql"}:
        options = dict(parse_qsl(parts.query))
        # PostgreSQL's JIT compiles the pages' correlated subqueries at every
        # request and costs more than it saves (measured: a dashboard query
        # spent 189 of its 285 ms compiling). A URL may still set its own.
        options.setdefault("options", "-c jit=off")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # Connections are reused between requests and between jobs of
            # one worker; health checks drop a connection the server closed
            # instead of failing the next request or job with it.
            "CONN_MAX_AGE": int(os.environ.get("CONN_MAX_AGE", "60")),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    if scheme == "sqlite":
        path = unquote(parts.path) or str(BASE_DIR / "db.sqlite3")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {scheme!r} is not supported; "
        "use postgres://... or sqlite:///path"
    )


DEBUG = env_bool("DEBUG", True)

# The fallback key is for a laptop only; a deployment with DEBUG off must
# provide its own.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "local-development-only-not-a-secret"  # noqa: S105

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "workbench.apps.WorkbenchAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "import_export",
    "workbench",
    "health",
    "playbooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "workbench.middleware.RejectNulBytesMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "workbench.urls"
WSGI_APPLICATION = "workbench.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Waiting for a lock beats failing with "database is locked" when the
    # development server and a command write at the same time.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Jobs -----------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")

# Without Redis every job runs inline, in the process that asked for it.
JOBS_INLINE = not REDIS_URL

RQ_QUEUES = {
    "default": {
        "URL": REDIS_URL or "redis://127.0.0.1:6379/0",
        # A chunk of about a thousand customers scores in seconds; ten
        # minutes means something is wrong, not slow.
        "DEFAULT_TIMEOUT": 600,
        "DEFAULT_RESULT_TTL": 24 * 3600,
    },
}
RQ_QUEUE_NAME = os.environ.get("RQ_QUEUE", "default")
# django-rq's entry in the admin serves its statistics JSON to any staff user;
# the dashboard lives at /django-rq/ instead, behind the Admin role.
RQ_SHOW_ADMIN_LINK = False

# Customers scored by one job of a fan-out.
SCORE_CHUNK_SIZE = int(os.environ.get("SCORE_CHUNK_SIZE", "1000"))

# A running job that has not reported progress for this long is stale: its
# worker most likely died.
JOB_STALE_AFTER_SECONDS = int(os.environ.get("JOB_STALE_AFTER_SECONDS", "1800"))

# Hour of day (UTC) of the nightly "score all as of yesterday" run.
NIGHTLY_SCORE_HOUR_UTC = int(os.environ.get("NIGHTLY_SCORE_HOUR_UTC", "2"))

# Folder of the public data files the tests and demos read; never copied in.
SHARED_DATA_DIR = Path(
    os.environ.get("WORKBENCH_SHARED_DATA", BASE_DIR.parent / "shared" / "data")
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "health": {"level": os.environ.get("LOG_LEVEL", "INFO")},
        "playbooks": {"level": os.environ.get("LOG_LEVEL", "INFO")},
        "workbench": {"level": os.environ.get("LOG_LEVEL", "INFO")},
    },
}
