"""Django settings for Bordin, read from the environment.

See ``docs/deploy.md`` for the table of variables. Secure defaults: ``DEBUG`` is off, the
secret key must be given (the demo generates one into its data directory), cookies are
HTTP-only, ``SameSite=Lax`` and secure whenever ``DEBUG`` is off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from bordin.web.env import env_bool, env_int, env_list, env_str

PACKAGE_DIR = Path(__file__).resolve().parent

DEBUG = env_bool("BORDIN_DEBUG", False)
DATA_DIR = Path(env_str("BORDIN_DATA_DIR", "demo-data"))

SECRET_KEY = env_str("BORDIN_SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "BORDIN_SECRET_KEY is not set. Generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` "
        "(`bordin demo` creates one in its data directory)."
    )

ALLOWED_HOSTS = env_list("BORDIN_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("BORDIN_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bordin.web.clinic",
    "bordin.web.checkins",
    "bordin.web.alerts",
    "bordin.web.audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bordin.web.urls"
WSGI_APPLICATION = "bordin.web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
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


def _database() -> dict[str, Any]:
    default_url = f"sqlite:///{(DATA_DIR / 'bordin.sqlite3').resolve()}"
    url = env_str("DATABASE_URL", default_url)
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the check-in page write while the caseload reads; IMMEDIATE transactions
        # take the write lock up front so concurrent submissions wait instead of failing.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            # Seconds a write waits for the lock (sqlite3's default of 5 gave "database is
            # locked" errors under a burst of concurrent check-ins; see tests/web/test_crash.py).
            "timeout": 30,
        }
    else:
        config["CONN_MAX_AGE"] = env_int("BORDIN_DB_CONN_MAX_AGE", 60)
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "caseload"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = env_str("BORDIN_LANGUAGE_CODE", "en")
TIME_ZONE = env_str("BORDIN_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
STATIC_ROOT = Path(env_str("BORDIN_STATIC_ROOT", str(DATA_DIR / "static")))

# Security: secure defaults, relaxed only for local development with DEBUG on.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("BORDIN_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = env_int("BORDIN_SESSION_AGE_SECONDS", 8 * 60 * 60)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("BORDIN_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("BORDIN_HSTS_SECONDS", 0)
if env_bool("BORDIN_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

# Audit log: take the client address from the first X-Forwarded-For hop only behind a reverse
# proxy that overwrites that header (otherwise clients could write any address into the log).
BORDIN_TRUST_X_FORWARDED_FOR = env_bool("BORDIN_TRUST_X_FORWARDED_FOR", False)

# Check-in links and the caseload's "overdue" badge.
BORDIN_CHECKIN_LINK_HOURS = env_int("BORDIN_CHECKIN_LINK_HOURS", 72)
BORDIN_CHECKIN_OVERDUE_DAYS = env_int("BORDIN_CHECKIN_OVERDUE_DAYS", 14)
BORDIN_CHECKIN_TEXT_LIMIT = env_int("BORDIN_CHECKIN_TEXT_LIMIT", 2000)
BORDIN_ISSUE_LINK_ON_SESSION = env_bool("BORDIN_ISSUE_LINK_ON_SESSION", True)

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("BORDIN_LOG_LEVEL", "INFO")},
}
