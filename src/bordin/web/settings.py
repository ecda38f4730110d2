"""Django settings for Bordin, read from the environment.

See ``docs/deploy.md`` for the table of variables. Secure defaults: ``DEBUG`` is off, the
secret key must be given (the demo generates one into its data directory), cookies are
HTTP-only, ``SameSite=Lax`` and secure whenever ``DEBUG`` is off.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONE, SELF
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
    "csp",
    "bordin.web.clinic",
    "bordin.web.checkins",
    "bordin.web.alerts",
    "bordin.web.audit",
    "bordin.web.accounts",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "bordin.web.journey",
    "bordin.web.operations",  # issue 9
    "bordin.web.guard",
    "bordin.web.instruments",
    "bordin.web.api",
    "ninja",  # serves the API docs page's assets itself (no CDN)
    "django_tasks",
    "django_tasks_db",
    "bordin.web.delivery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Behind a proxy without a trusted client address: 503 and an error log (web.guard.proxy).
    "bordin.web.guard.proxy.ProxyAddressMiddleware",
    "csp.middleware.CSPMiddleware",
    # A stored value no key can decrypt: a plain 503 page, never a traceback (web.crypto).
    "bordin.web.crypto.DecryptionErrorMiddleware",
    # Cache-Control: no-store on every page that does not set its own, and a
    # Permissions-Policy on every response (web.headers).
    "bordin.web.headers.NoStoreMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The idle timeout: renews a session at most once a minute (web.session_renewal).
    "bordin.web.session_renewal.SessionRenewalMiddleware",
    # The browser's language; staff pages then take the user's own choice and client pages
    # the client's language (web.i18n; issue 14).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "bordin.web.csrf.ClientFormCsrfMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # A staff member's chosen language and their clinic's time zone (web.i18n; issue 14).
    "bordin.web.i18n.StaffLocaleMiddleware",
    # Every 403 and every anonymous request for a staff page is audited (web.audit.middleware).
    "bordin.web.audit.middleware.RefusalAuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Ends logged-out-everywhere and over-age sessions; requires the second factor.
    "bordin.web.accounts.middleware.StaffSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a lockout detected during the request into the lockout page.
    "axes.middleware.AxesMiddleware",
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
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "bordin.web.accounts.context_processors.account",
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

# --- Authentication (docs/security.md, section "Authentication") ----------------------------
# Argon2id for new and changed passwords; PBKDF2 hashes still verify and are upgraded to
# Argon2 at the user's next log-in.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # aaaaaaaaaaaa, abcabcabcabc, 123456789012 (NIST SP 800-63B 5.1.1.2; issue 15).
    {"NAME": "bordin.web.accounts.passwords.LowVarietyPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "caseload"
LOGOUT_REDIRECT_URL = "login"
# django-axes checks every log-in first: 5 failures (password or second-factor code) for one
# user name from one address lock that pair out for 15 minutes; any attempt during the lockout
# restarts the wait. A complete log-in (password and code) clears the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failures and lockouts are rows in the database, shared by every worker (not per process).
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("BORDIN_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("BORDIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = False  # reset only after the second factor (accounts.views)
AXES_LOCKOUT_CALLABLE = "bordin.web.accounts.views.locked_out"
AXES_CLIENT_IP_CALLABLE = "bordin.web.audit.log.client_ip"  # the audit log's address
AXES_DISABLE_ACCESS_LOG = True  # successful log-ins are in the audit log already
AXES_ENABLE_ADMIN = False
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code", "csrfmiddlewaretoken"]
AXES_VERBOSE = False
# Second factor (django-otp): the authenticator app shows "Bordin: <username>".
OTP_TOTP_ISSUER = env_str("BORDIN_OTP_ISSUER", "Bordin")
# `bordin demo` only: skip the second factor, honoured only with DEBUG and on loopback.
BORDIN_DEMO_SKIP_2FA = env_bool("BORDIN_DEMO_SKIP_2FA", False)

LANGUAGE_CODE = env_str("BORDIN_LANGUAGE_CODE", "en")
TIME_ZONE = env_str("BORDIN_TIME_ZONE", "UTC")
USE_I18N = True
# Languages of the interface (docs/translating.md). BORDIN_EXTRA_LANGUAGES adds more without a
# code change, as comma-separated "code:Name" pairs, e.g. "fr:Français,de:Deutsch", once their
# messages are in src/bordin/web/locale/<code>/LC_MESSAGES/django.po.
LANGUAGES = [("en", "English"), ("es", "Español")] + [
    (code.strip(), name.strip() or code.strip())
    for code, _, name in (pair.partition(":") for pair in env_list("BORDIN_EXTRA_LANGUAGES", []))
]
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
STATIC_ROOT = Path(env_str("BORDIN_STATIC_ROOT", str(DATA_DIR / "static")))
# No `Access-Control-Allow-Origin: *` on the stylesheet: no other site needs to read it.
WHITENOISE_ALLOW_ALL_ORIGINS = False

# Security: secure defaults, relaxed only for local development with DEBUG on.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# CSRF tokens live in the server-side session, not a cookie: nothing another site (or a sibling
# subdomain) can read or plant. bordin.web.csrf relies on this for client forms.
CSRF_USE_SESSIONS = True
# security.W003 looks for Django's CSRF middleware by name and cannot see our subclass of it;
# bordin.E003 (bordin.web.csrf) checks for it instead.
# security.W021 asks for HSTS preload, a commitment for a whole registrable domain that most
# clinics cannot make for a subdomain; BORDIN_HSTS_PRELOAD turns it on (docs/security.md).
SILENCED_SYSTEM_CHECKS = ["security.W003", "security.W021"]
SESSION_COOKIE_SECURE = env_bool("BORDIN_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Idle timeout: BORDIN_IDLE_TIMEOUT_MINUTES without a request ends a session. Requests renew
# it, at most once every BORDIN_SESSION_RENEW_SECONDS (web.session_renewal), so most page
# views do not write the session. No staff session lives longer than BORDIN_SESSION_MAX_HOURS.
BORDIN_IDLE_TIMEOUT_MINUTES = env_int("BORDIN_IDLE_TIMEOUT_MINUTES", 30)
SESSION_COOKIE_AGE = BORDIN_IDLE_TIMEOUT_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = False
# Database sessions, read with a query compiled once per connection (issue 10).
SESSION_ENGINE = "bordin.web.session_store"
BORDIN_SESSION_RENEW_SECONDS = env_int("BORDIN_SESSION_RENEW_SECONDS", 60)
BORDIN_SESSION_MAX_HOURS = env_int("BORDIN_SESSION_MAX_HOURS", 8)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("BORDIN_SSL_REDIRECT", False)
# HSTS for a year once DEBUG is off. Django sends it on HTTPS responses only and browsers
# ignore it over plain HTTP, so it cannot lock out a plain-HTTP test install.
SECURE_HSTS_SECONDS = env_int("BORDIN_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 60 * 60)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("BORDIN_HSTS_INCLUDE_SUBDOMAINS", True)
# Only for a registrable domain submitted to hstspreload.org (docs/deploy.md).
SECURE_HSTS_PRELOAD = env_bool("BORDIN_HSTS_PRELOAD", False)
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): no inline script or style anywhere, nothing from other
# origins, no framing. See docs/security.md, "Transport and headers".
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [NONE],
    }
}
BORDIN_BEHIND_PROXY = env_bool("BORDIN_BEHIND_PROXY", False)
if BORDIN_BEHIND_PROXY:
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
# A client's session after following a link ends this many minutes after the link was
# followed, however active (and after the thank-you page was shown once).
BORDIN_LINK_SESSION_MINUTES = env_int("BORDIN_LINK_SESSION_MINUTES", 15)
# The client's journey (intake, fit check, graduation summary): link lifetime in hours.
BORDIN_JOURNEY_LINK_HOURS = env_int("BORDIN_JOURNEY_LINK_HOURS", 7 * 24)
# Failed check-in link lookups (unknown or unusable token) allowed per client address and
# window; beyond that every lookup from the address answers 429 until the window ends.
# 0 turns the limit off. Counted in the database, shared by all workers (web.guard.counters).
BORDIN_CHECKIN_RATE_LIMIT = env_int("BORDIN_CHECKIN_RATE_LIMIT", 20)
BORDIN_CHECKIN_RATE_WINDOW_SECONDS = env_int("BORDIN_CHECKIN_RATE_WINDOW_SECONDS", 60)

# Encryption at rest of free text (web.crypto; docs/security.md, "Data protection"):
# comma-separated Fernet keys, the first encrypts, all decrypt.
BORDIN_FIELD_KEYS = env_list("BORDIN_FIELD_KEYS", [])
BORDIN_ALLOW_PLAINTEXT_FREE_TEXT = env_bool("BORDIN_ALLOW_PLAINTEXT_FREE_TEXT", False)

# Check-in tokens never reach a log: the filter rewrites "/c/<token>" (and any other long
# token-like string) in every record, on the loggers that log request paths and on the handler.
_REDACT = {"redact_tokens": {"()": "bordin.web.logfilters.RedactTokens"}}
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": _REDACT,
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact_tokens"]}},
    "loggers": {
        # Records are filtered where they are created, so every handler (tests' caplog
        # included) sees the redacted message.
        "django.request": {"filters": ["redact_tokens"]},
        "django.security.csrf": {"filters": ["redact_tokens"]},
        # The development server's request lines (`bordin demo`).
        "django.server": {
            "handlers": ["console"],
            "filters": ["redact_tokens"],
            "propagate": False,
        },
    },
    "root": {"handlers": ["console"], "level": env_str("BORDIN_LOG_LEVEL", "INFO")},
}

# --- Delivery (issue 10; docs/delivery.md): background worker, email, SMS, reminders -----------
# Django's tasks API (django-tasks backport) with the database backend: `bordin worker` runs it.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Email through Django's email framework; SMTP settings from the environment (docs/deploy.md).
EMAIL_BACKEND = env_str("BORDIN_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("BORDIN_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("BORDIN_EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("BORDIN_EMAIL_USER")
EMAIL_HOST_PASSWORD = env_str("BORDIN_EMAIL_PASSWORD")
EMAIL_USE_TLS = env_bool("BORDIN_EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("BORDIN_EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("BORDIN_EMAIL_TIMEOUT", 20)
DEFAULT_FROM_EMAIL = env_str("BORDIN_EMAIL_FROM", "Bordin <no-reply@localhost>")
# The demo's file backend (bordin.web.delivery.mail.EmlFileBackend): one .eml per message.
EMAIL_FILE_PATH = env_str("BORDIN_EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
BORDIN_SMS_BACKEND = env_str("BORDIN_SMS_BACKEND", "bordin.web.delivery.sms.ConsoleBackend")
BORDIN_SMS_FILE_PATH = env_str("BORDIN_SMS_FILE_PATH", str(DATA_DIR / "sms"))
# Links in messages are built on this address (the worker has no request to take it from).
BORDIN_BASE_URL = env_str("BORDIN_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
BORDIN_REMINDER_HOURS = env_int("BORDIN_REMINDER_HOURS", 24)
BORDIN_QUIET_HOURS = env_str("BORDIN_QUIET_HOURS", "21:00-08:00")
BORDIN_DELIVERY_MAX_ATTEMPTS = env_int("BORDIN_DELIVERY_MAX_ATTEMPTS", 3)
BORDIN_DELIVERY_RETRY_SECONDS = env_int("BORDIN_DELIVERY_RETRY_SECONDS", 60)
BORDIN_DELIVERY_CLAIM_SECONDS = env_int("BORDIN_DELIVERY_CLAIM_SECONDS", 120)
BORDIN_WORKER_TICK_SECONDS = env_int("BORDIN_WORKER_TICK_SECONDS", 5)
