"""Settings for CML Fleet Monitor, read from the environment (see README: Configuration)."""

import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from monitor.env import (
    env_bool,
    env_ca_bundle,
    env_int,
    env_list,
    env_str,
    env_tags,
    known_ec2_regions,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
if not DEBUG:
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
else:
    SECRET_KEY = SECRET_KEY or "insecure-development-key-only-for-debug"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "django_q",
    "axes",
    "csp",
    "ninja",  # the API docs' own static files (Swagger UI), not a CDN's
    "fleet",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "monitor.middleware.LoginRequired",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it answers lockouts
]

ROOT_URLCONF = "monitor.urls"
ASGI_APPLICATION = "monitor.asgi.application"
WSGI_APPLICATION = None

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
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (daphne, qcluster) share the file: wait for locks instead of failing,
    # and take the write lock at BEGIN so two writers never deadlock on an upgrade.
    # Tests that start daphne in a subprocess need the test database in a file they can open.
    # One file per test run, so that two runs on one machine never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"fleet-test-{os.getpid()}.sqlite3")
    }
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    # django-q2's monitor and the refresh throttle need a cache every process shares.
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "fleet_cache",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "fleet:worker_list"
LOGOUT_REDIRECT_URL = "login"
SESSION_HOURS = env_int("SESSION_HOURS", 12, minimum=1)
SESSION_COOKIE_AGE = SESSION_HOURS * 3600

# Login attempts (site and admin): django-axes locks a user name at one client address after
# LOGIN_FAILURE_LIMIT failures, for LOGIN_COOLOFF_MINUTES (admin → Access attempts unlocks).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Single sign-on with OpenID Connect (mozilla-django-oidc), beside the password login; on
# when OIDC_RP_CLIENT_ID is set. The provider's endpoints are named one by one (no discovery
# at start-up). OIDC_ROLE_CLAIM names the claim (a list or one string) whose values
# OIDC_ROLE_MAP turns into the roles viewer, operator and admin, at every login.
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
OIDC_OP_LOGOUT_ENDPOINT = env_str("OIDC_OP_LOGOUT_ENDPOINT")  # end_session_endpoint, optional
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile")
OIDC_USERNAME_CLAIM = env_str("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_ROLE_CLAIM = env_str("OIDC_ROLE_CLAIM", "groups")
OIDC_ROLE_MAP = env_tags("OIDC_ROLE_MAP") or {r: r for r in ("viewer", "operator", "admin")}
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the logout's id_token_hint
OIDC_OP_LOGOUT_URL_METHOD = "fleet.sso.provider_logout_url"
OIDC_CALLBACK_CLASS = "fleet.sso.Callback"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
if OIDC_ENABLED:
    for _name in (
        "OIDC_RP_CLIENT_SECRET",
        "OIDC_OP_AUTHORIZATION_ENDPOINT",
        "OIDC_OP_TOKEN_ENDPOINT",
        "OIDC_OP_USER_ENDPOINT",
        "OIDC_OP_JWKS_ENDPOINT",
    ):
        if not globals()[_name]:
            raise ImproperlyConfigured(f"{_name} must be set when OIDC_RP_CLIENT_ID is")
    _roles = {"viewer", "operator", "admin"}
    for _value, _role in OIDC_ROLE_MAP.items():
        if _role not in _roles:
            raise ImproperlyConfigured(
                f"OIDC_ROLE_MAP: {_value}={_role}: the role must be viewer, operator or admin"
            )
    AUTHENTICATION_BACKENDS.append("fleet.sso.RoleMappingBackend")

LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_COOLOFF_MINUTES = env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "monitor.lockout.lockout_response"

# Mail: only for password resets, whose pages exist only when EMAIL_HOST is set.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "cml-fleet@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# The live pages' layer: in-memory, one per web process (the change log, not the layer, carries
# changes between processes). A stream's channel holds at most `capacity` messages, each for at
# most `expiry` seconds; a channel that overflows or keeps a message longer is marked lost and its
# page told to reload (fleet.live.layer), never silently dropped from its groups. One feed step
# can send a stream of 200 workers x 5 fragments + 2 fleet messages at once: hence 1100.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "fleet.live.layer.LiveChannelLayer",
        "CONFIG": {"capacity": 1100, "expiry": 60},
    }
}

# Security: sensible for production behind a TLS-terminating proxy; relaxed only in DEBUG.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Only this site's own files run or style a page: no inline script or style anywhere (htmx is
# told not to inject its indicator style, see base.html), and the live stream is same-origin.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}
if OIDC_ENABLED and OIDC_OP_LOGOUT_ENDPOINT:
    # The logout form's answer redirects to the provider's end_session_endpoint: allow its
    # origin as a form target (browsers apply form-action to redirects too).
    _logout = urlsplit(OIDC_OP_LOGOUT_ENDPOINT)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(
        f"{_logout.scheme}://{_logout.netloc}"
    )
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- The fleet ---------------------------------------------------------------------------------
_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
AWS_REGIONS = env_list("AWS_REGIONS", ["us-east-1"])
for _region in AWS_REGIONS:
    if not _REGION_RE.match(_region):
        raise ImproperlyConfigured(f"AWS_REGIONS: {_region!r} is not an AWS region name")
if not AWS_REGIONS:
    raise ImproperlyConfigured("AWS_REGIONS must name at least one region")
_unknown = set(AWS_REGIONS) - known_ec2_regions()
if _unknown:
    raise ImproperlyConfigured(
        f"AWS_REGIONS: {', '.join(sorted(_unknown))} not an EC2 region this boto3 knows "
        "(a typo, or a region newer than the installed boto3: upgrade it)"
    )
AWS_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL") or None

CML_USERNAME = env_str("CML_USERNAME", "admin")
CML_PASSWORD = env_str("CML_PASSWORD")
CML_VERIFY_TLS = env_bool("CML_VERIFY_TLS", True)
# The CAs that signed the CML servers' certificates (often their own self-signed ones): verified
# TLS without trusting the public CAs. Verification matters because the one CML account and
# password go to every worker.
CML_CA_BUNDLE = env_ca_bundle("CML_CA_BUNDLE")
if CML_CA_BUNDLE and not CML_VERIFY_TLS:
    raise ImproperlyConfigured(
        "CML_CA_BUNDLE verifies CML's certificates: it cannot be used with CML_VERIFY_TLS=false"
    )
CML_ENDPOINT_TEMPLATE = env_str("CML_ENDPOINT_TEMPLATE", "https://{public_ip}")
if "{public_ip}" not in CML_ENDPOINT_TEMPLATE and "{instance_id}" not in CML_ENDPOINT_TEMPLATE:
    raise ImproperlyConfigured("CML_ENDPOINT_TEMPLATE must contain {public_ip} or {instance_id}")

POLL_INTERVAL_SECONDS = env_int("POLL_INTERVAL_SECONDS", 300)
LABS_INTERVAL_SECONDS = env_int("LABS_INTERVAL_SECONDS", 1800)
for _name in ("POLL_INTERVAL_SECONDS", "LABS_INTERVAL_SECONDS"):
    if globals()[_name] < 60 or globals()[_name] % 60:
        raise ImproperlyConfigured(
            f"{_name}={globals()[_name]}: django-q2's scheduler wakes about every 30 s and "
            "schedules in whole minutes, so use a multiple of 60 seconds, at least 60"
        )
COLLECT_CONCURRENCY = env_int("COLLECT_CONCURRENCY", 50, minimum=1)
# A fleet cycle larger than this is split into shards (per region, at most this many workers
# each) that every qcluster process may take: see fleet/collection/shards.py.
COLLECT_SHARD_SIZE = env_int("COLLECT_SHARD_SIZE", 500, minimum=1)
REFRESH_MIN_INTERVAL_SECONDS = env_int("REFRESH_MIN_INTERVAL_SECONDS", 10, minimum=0)
COLLECT_LOCK_WAIT_SECONDS = env_int("COLLECT_LOCK_WAIT_SECONDS", 60, minimum=0)
HISTORY_DAYS = env_int("HISTORY_DAYS", 7, minimum=1)
CML_REQUEST_TIMEOUT_SECONDS = env_int("CML_REQUEST_TIMEOUT_SECONDS", 10, minimum=1)
CML_WORKER_DEADLINE_SECONDS = env_int("CML_WORKER_DEADLINE_SECONDS", 60, minimum=1)
# One CML answer's body is read up to this many bytes (5 MB, decimal); more is that call's error.
CML_MAX_RESPONSE_BYTES = env_int("CML_MAX_RESPONSE_BYTES", 5_000_000, minimum=100_000)
# The AWS phase of a cycle (every region at once, boto3's retries included) ends by this.
AWS_DEADLINE_SECONDS = env_int("AWS_DEADLINE_SECONDS", 60, minimum=5)

# --- Actions ---
# How long a start, stop, terminate or licence registration is followed before it is recorded
# as failed (the task polls EC2 or CML every few seconds until then).
ACTION_DEADLINE_SECONDS = env_int("ACTION_DEADLINE_SECONDS", 600, minimum=10)
LAB_IMPORT_MAX_BYTES = env_int("LAB_IMPORT_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
# Scheduled import of new EC2 instances carrying every one of these tags (KEY=VALUE, comma
# separated); off when empty.
AUTO_IMPORT_TAGS = env_tags("AUTO_IMPORT_TAGS")
AUTO_IMPORT_INTERVAL_SECONDS = env_int("AUTO_IMPORT_INTERVAL_SECONDS", 3600)
if AUTO_IMPORT_INTERVAL_SECONDS < 60 or AUTO_IMPORT_INTERVAL_SECONDS % 60:
    raise ImproperlyConfigured(
        f"AUTO_IMPORT_INTERVAL_SECONDS={AUTO_IMPORT_INTERVAL_SECONDS}: use whole minutes, "
        "a multiple of 60 seconds, at least 60"
    )

# --- Idle workers and alerts ---
# How often CML's telemetry is read for activity; whole minutes (a django-q2 schedule).
ACTIVITY_INTERVAL_SECONDS = env_int("ACTIVITY_INTERVAL_SECONDS", 900)
if ACTIVITY_INTERVAL_SECONDS < 60 or ACTIVITY_INTERVAL_SECONDS % 60:
    raise ImproperlyConfigured(
        f"ACTIVITY_INTERVAL_SECONDS={ACTIVITY_INTERVAL_SECONDS}: use whole minutes, "
        "a multiple of 60 seconds, at least 60"
    )
IDLE_THRESHOLD_MINUTES = env_int("IDLE_THRESHOLD_MINUTES", 60, minimum=5)
IDLE_WARNING_MINUTES = env_int("IDLE_WARNING_MINUTES", 15, minimum=1)
AUTO_PAUSE_DEFAULT = env_bool("AUTO_PAUSE_DEFAULT", False)
ALERT_AFTER_CYCLES = env_int("ALERT_AFTER_CYCLES", 3, minimum=1)

# --- API, metrics ---
# Calls per API token per window (a fixed window counted in the shared cache), then 429.
API_RATE_LIMIT = env_int("API_RATE_LIMIT", 120, minimum=1)
API_RATE_WINDOW_SECONDS = env_int("API_RATE_WINDOW_SECONDS", 60, minimum=1)
# Bearer token Prometheus sends to /metrics; unset, /metrics is open with DEBUG on, else off.
METRICS_TOKEN = env_str("METRICS_TOKEN")

# --- django-q2 ----------------------------------------------------------------------------------
# timeout > the cycle's own deadline, retry > timeout (else a task runs twice), no catch-up.
# The AWS and CML parts of a cycle end by their deadlines whatever the fleet does; q2's task
# timeout leaves room for the database after them, and q2's retry comes later still.
COLLECT_CYCLE_DEADLINE_SECONDS = env_int("COLLECT_CYCLE_DEADLINE_SECONDS", 600, minimum=10)
_CYCLE_BOUND = COLLECT_LOCK_WAIT_SECONDS + AWS_DEADLINE_SECONDS + COLLECT_CYCLE_DEADLINE_SECONDS
Q_CLUSTER = {
    "name": "fleet",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": max(_CYCLE_BOUND, ACTION_DEADLINE_SECONDS) + 120,
    "retry": max(_CYCLE_BOUND, ACTION_DEADLINE_SECONDS) + 240,
    "max_attempts": 1,
    "catch_up": False,
    "cache": "default",
    "save_limit": 1000,
    "ack_failures": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "null": {"class": "logging.NullHandler"},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # Apprise's lines can name a channel's URL (tokens, passwords): never printed; the
        # alert delivery captures them, scrubs the URL and logs its own line.
        "apprise": {"handlers": ["null"], "propagate": False, "level": "WARNING"},
    },
}
