"""Settings, read from the environment in this one place (django-environ).

Every knob a deployment turns is an environment variable listed in README.md.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import environ
import structlog
import structlog.tracebacks
from django.core.exceptions import ImproperlyConfigured

from core.log_redaction import masking_paths

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # optional, never committed

DEBUG = env.bool("DEBUG", default=False)
# "production" (the image sets it) refuses to start without real secrets;
# "development" (the default: make run, make test, a checkout) may make its own.
DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV must be development or production, not {DJANGO_ENV!r}.")
PRODUCTION = DJANGO_ENV == "production"
# Values seen in templates and tutorials: never a secret.
_PLACEHOLDERS = {"change-me", "changeme", "secret", "build", "insecure", "django-insecure"}


def _secret(name: str, value: str) -> str:
    """In production: set, long and not a placeholder, or refuse to start.
    Anyone holding SECRET_KEY (or JWT_SIGNING_KEY) can mint any tenant's
    admin token."""
    weak = (
        len(value) < 50
        or len(set(value)) < 16  # "a" * 50, "changeme" * 7, spaces
        or value.strip() != value
        or value.lower() in _PLACEHOLDERS
        or value.lower().startswith("django-insecure")
    )
    if PRODUCTION and weak:
        raise ImproperlyConfigured(
            f"{name} must be set to a random value of at least 50 characters in production "
            '(python -c "import secrets; print(secrets.token_urlsafe(50))").'
        )
    return value


def _local_secret_key() -> str:
    """A random key kept in .data/ (git-ignored) when SECRET_KEY is unset, so a
    fresh clone runs without configuration and never ships a known key."""
    path = BASE_DIR / ".data" / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret("SECRET_KEY", env.str("SECRET_KEY", default="")) or _local_secret_key()
TENANT_BASE_DOMAIN = env.str("TENANT_BASE_DOMAIN", default="localhost").lower().strip(".")
PORT = env.int("PORT", default=8000)

# The base domain serves the platform API; each tenant lives on its domains in
# the Domain table (subdomains of the base domain, or its own custom domains).
# Hosts are validated by tenants.middleware.TenantMiddleware against that table
# (cached, tenants/cache.py), before anything reads the Host header: a domain
# added at run time is served at once, and any other host answers 404 JSON.
# So Django's own list admits every host: the middleware is the gate.
ALLOWED_HOSTS = ["*"]

# --- Database -------------------------------------------------------------
# Required. ``make run`` and ``make test`` set it to an embedded PostgreSQL
# (devtools/embedded_db.py) when it is unset; settings never start a database.
_database_url = env.str("DATABASE_URL", default="")
if not _database_url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Set it to your PostgreSQL, or use the embedded one of "
        "make run / make test in this shell: export DATABASE_URL=$(make -s db-url)"
    )
_db = environ.Env.db_url_config(_database_url)
_db["HOST"] = unquote(str(_db.get("HOST", "")))  # libpq-style %2F-encoded socket dirs
_db["ENGINE"] = "django_tenants.postgresql_backend"
_db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
_db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Apps: one place for both lists ------------------------------------------
# Apps in both lists get tables in the public schema (platform operators) and
# in every tenant schema (that tenant's users, groups, grants and tokens).
_BOTH = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "accounts.admin_site.TenantAdminConfig",  # django.contrib.admin, titled with the tenant's name
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework_simplejwt.token_blacklist",
    "guardian",
    "accounts",
]
SHARED_APPS = [
    "django_tenants",
    "tenants",
    *_BOTH,
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "djoser",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "django_prometheus",
    "django_structlog",
    "mail",  # the email outbox (public schema only: one table for the worker to drain)
    "devtools",  # seed_demo; nothing at runtime imports it
]
TENANT_APPS = [*_BOTH, "catalog"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
TENANT_LIMIT_SET_CALLS = True
# The schema that new tenants are cloned from; migrate_schemas keeps it migrated
# because it has a (hidden) tenant row. See tenants/cloning.py.
TENANT_TEMPLATE_SCHEMA = "tenant_template"

MIDDLEWARE = [
    # X-Request-ID kept when well-formed, else made; returned on the response. It also
    # times the request, the whole stack below it (core.metrics.REQUEST_SECONDS).
    "core.request_id.RequestIdMiddleware",
    # One structured line per request, with the request id on every line.
    "django_structlog.middlewares.RequestMiddleware",
    "core.limits.RequestBodyLimitMiddleware",
    # /api/health/ready/ and /api/metrics/ on any host, before routing.
    "config.probes.ProbesMiddleware",
    "tenants.middleware.TenantMiddleware",
    # After the tenant is known: its allowed origins (tenants/cors.py).
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.audit.middleware.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
WSGI_APPLICATION = "config.wsgi.application"

# --- Auth -------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = (
    "accounts.auth.backends.EmailOrUsernameBackend",
    "guardian.backends.ObjectPermissionBackend",
)
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Email is unique per schema case-insensitively (a functional unique index,
# accounts_user_email_ci_unique), which this check cannot see.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]
# Guardian's anonymous user would be a row in every schema (and in the
# template, which must hold no users); published products are readable by
# anonymous callers through our own rule instead.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

# --- Cache --------------------------------------------------------------------
# "default": shared state (throttles and the like). Keys are prefixed with the
# current schema so tenants never read each other's entries.
# "tenants": host -> tenant resolution, read before any schema is chosen, so
# its keys carry the database name instead (tenants/cache.py). It must be seen
# by every process serving requests, or suspending a tenant would not reach
# them: Redis when REDIS_URL is set, else files under .data/ (every process of
# this machine).
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    _redis = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL}
    CACHES = {
        "default": {
            **_redis,
            "KEY_PREFIX": "td",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        },
        "tenants": {**_redis, "KEY_PREFIX": "td-tenants", "TIMEOUT": 3600},
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "default",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
        },
        "tenants": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": env.str("TENANT_CACHE_DIR", default=str(BASE_DIR / ".data" / "cache" / "tenants")),
            "TIMEOUT": 3600,
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        },
    }

# --- Email and the task queue --------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"no-reply@{TENANT_BASE_DOMAIN}")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # seconds per SMTP operation
if PRODUCTION and not env.str("EMAIL_URL", default="").startswith("smtp"):
    # The console backend would print every one-time link into the logs.
    raise ImproperlyConfigured("EMAIL_URL must name an SMTP server in production (smtp+tls://user:pass@host:587).")


# Emails go through the outbox (mail/services.py). With a broker, the Celery
# worker sends them (`make worker`); without one (the embedded default of
# `make run`), a thread of the web process does, and each process sweeps.
def _next_redis_db(url: str) -> str:
    """REDIS_URL's server, the database after its own: the broker must not
    share the cache's database, which a cache clear flushes."""
    if not url:
        return ""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit((parts.scheme, parts.netloc, f"/{(db + 1) % 16}", parts.query, ""))


CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_next_redis_db(REDIS_URL))
if CELERY_BROKER_URL and REDIS_URL and CELERY_BROKER_URL.rstrip("/") == REDIS_URL.rstrip("/"):
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL must be another Redis database than REDIS_URL (a cache clear flushes it)."
    )
EMAIL_DELIVERY = env.str("EMAIL_DELIVERY", default="celery" if CELERY_BROKER_URL else "thread")
if EMAIL_DELIVERY not in ("celery", "thread", "inline"):
    raise ImproperlyConfigured(f"EMAIL_DELIVERY must be celery, thread or inline, not {EMAIL_DELIVERY!r}.")
if EMAIL_DELIVERY == "celery" and not CELERY_BROKER_URL:
    raise ImproperlyConfigured("EMAIL_DELIVERY=celery needs CELERY_BROKER_URL (or REDIS_URL).")
EMAIL_MAX_ATTEMPTS = env.int("EMAIL_MAX_ATTEMPTS", default=8)
EMAIL_RETRY_BASE_SECONDS = env.float("EMAIL_RETRY_BASE_SECONDS", default=30.0)  # doubles per attempt
EMAIL_RETRY_MAX_SECONDS = env.float("EMAIL_RETRY_MAX_SECONDS", default=3600.0)
EMAIL_SWEEP_SECONDS = env.float("EMAIL_SWEEP_SECONDS", default=15.0)
# A dispatched email not sent within this long is dispatched again by the sweep.
EMAIL_DISPATCH_LEASE_SECONDS = env.int("EMAIL_DISPATCH_LEASE_SECONDS", default=120)

CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task: the message is delivered again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 3, "socket_timeout": 5}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # our logging (below), JSON in production
CELERY_WORKER_SEND_TASK_EVENTS = False
# Sent and dropped emails are deleted after this many days, failed ones after three times as long.
EMAIL_RETENTION_DAYS = env.int("EMAIL_RETENTION_DAYS", default=30)
CELERY_BEAT_SCHEDULE = {
    "mail-sweep": {"task": "mail.sweep", "schedule": EMAIL_SWEEP_SECONDS},
    "mail-prune": {"task": "mail.prune", "schedule": 3600.0},
}
# tenant-schemas-celery: keep the tenant of a schema for a minute in the worker.
CELERY_TASK_TENANT_CACHE_SECONDS = 60
DJANGO_STRUCTLOG_CELERY_ENABLED = True  # the request id travels with the tasks

# --- DRF, JWT, djoser -----------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ("accounts.auth.authentication.TenantJWTAuthentication",),
    "DEFAULT_PERMISSION_CLASSES": ("rest_framework.permissions.IsAuthenticated",),
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.openapi.AutoSchema",  # documents the error answers too
    "EXCEPTION_HANDLER": "core.handlers.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ("rest_framework.renderers.JSONRenderer",),
    "DEFAULT_PARSER_CLASSES": ("core.limits.BoundedJSONParser",),
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    # Keys carry the tenant (accounts/throttles.py); limits per scope:
    "DEFAULT_THROTTLE_RATES": {
        "login_ip": env.str("THROTTLE_LOGIN_IP", default="30/min"),
        "login_account": env.str("THROTTLE_LOGIN_ACCOUNT", default="10/min"),
        "register_ip": env.str("THROTTLE_REGISTER_IP", default="20/hour"),
        "reset_ip": env.str("THROTTLE_RESET_IP", default="20/hour"),
        "reset_account": env.str("THROTTLE_RESET_ACCOUNT", default="5/hour"),
    },
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = (
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    )

# A login session (a family of rotated refresh tokens) ends this long after
# the login, however often it is refreshed (accounts.auth.token_families).
JWT_SESSION_MAX_AGE = timedelta(days=env.int("JWT_SESSION_DAYS", default=30))
_JWT_KEY = env.str("JWT_SIGNING_KEY", default="")
SIMPLE_JWT = {
    "AUTH_HEADER_TYPES": ("Bearer", "JWT"),
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=5)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "SIGNING_KEY": _secret("JWT_SIGNING_KEY", _JWT_KEY) if _JWT_KEY else SECRET_KEY,
    "AUTH_TOKEN_CLASSES": ("accounts.auth.jwt_tokens.TenantAccessToken",),
    "TOKEN_OBTAIN_SERIALIZER": "accounts.auth.jwt_serializers.TenantTokenObtainPairSerializer",
    "TOKEN_REFRESH_SERIALIZER": "accounts.auth.jwt_serializers.TenantTokenRefreshSerializer",
    "TOKEN_VERIFY_SERIALIZER": "accounts.auth.jwt_serializers.TenantTokenVerifySerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "accounts.auth.jwt_serializers.TenantTokenBlacklistSerializer",
}

DJOSER = {
    "LOGIN_FIELD": "email",
    "TOKEN_MODEL": None,
    "HIDE_USERS": True,
    "SERIALIZERS": {
        "user_create": "accounts.serializers.UserCreateSerializer",
        "user": "accounts.serializers.UserSerializer",
        "current_user": "accounts.serializers.CurrentUserSerializer",
        "user_delete": "accounts.serializers.UserDeleteSerializer",
        "activation": "accounts.serializers.ActivationSerializer",
        "password_reset": "accounts.serializers.EmailSerializer",
        "password_reset_confirm": "accounts.serializers.PasswordResetConfirmSerializer",
        "set_password": "accounts.serializers.SetPasswordSerializer",
        "set_username": "accounts.serializers.SetEmailSerializer",
        "username_reset": "accounts.serializers.EmailSerializer",
        "username_reset_confirm": "accounts.serializers.EmailResetConfirmSerializer",
    },
    "PERMISSIONS": {
        "user_list": ["accounts.permissions.IsTenantAdmin"],
        "user": ["accounts.permissions.CurrentUserOrTenantAdmin"],
        "user_delete": ["accounts.permissions.CurrentUserOrTenantAdmin"],
        "set_password": ["rest_framework.permissions.IsAuthenticated"],
        "set_username": ["rest_framework.permissions.IsAuthenticated"],
        # The seed: "reset_email ... Access: Authenticated user".
        "username_reset": ["rest_framework.permissions.IsAuthenticated"],
    },
}
# Emailed links, always on the tenant's primary domain from the Domain table,
# with the scheme and port users reach it on (unset: those of the request).
PUBLIC_SCHEME = env.str("PUBLIC_SCHEME", default="")
PUBLIC_PORT = env.str("PUBLIC_PORT", default="")
# A path (the defaults) is served by this deployment's own pages on the tenant's
# host (accounts/pages.py); a full URL template sends users to your own front end
# instead: "https://app.example.com/activate?d={domain}&u={uid}&t={token}".
# Placeholders: {scheme} {domain} {slug} {uid} {token} (invitations: {token}).
# A tenant may override any of them (Tenant.link_templates, platform API).
ACCOUNT_ACTIVATION_URL = env.str("ACCOUNT_ACTIVATION_URL", default="activate/{uid}/{token}")
ACCOUNT_PASSWORD_RESET_URL = env.str("ACCOUNT_PASSWORD_RESET_URL", default="password/reset/confirm/{uid}/{token}")
ACCOUNT_EMAIL_RESET_URL = env.str("ACCOUNT_EMAIL_RESET_URL", default="email/reset/confirm/{uid}/{token}")
ACCOUNT_INVITATION_URL = env.str("ACCOUNT_INVITATION_URL", default="invitation/{token}")
# Lifetimes of emailed one-time tokens, in seconds.
ACCOUNT_ACTIVATION_TIMEOUT = env.int("ACCOUNT_ACTIVATION_TIMEOUT", default=3 * 24 * 3600)
ACCOUNT_INVITATION_TIMEOUT = env.int("ACCOUNT_INVITATION_TIMEOUT", default=7 * 24 * 3600)
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3600)
EMAIL_RESET_TIMEOUT = env.int("EMAIL_RESET_TIMEOUT", default=3600)
# Apps whose model permissions tenant admins may assign through /api/groups/.
ASSIGNABLE_PERMISSION_APPS = ("catalog", "accounts", "auth")

SPECTACULAR_SETTINGS = {
    "TITLE": "tenantdesk API",
    "DESCRIPTION": (
        "Schema-per-tenant SaaS backend: platform API on the base domain, tenant API on each subdomain. "
        'Every error is JSON: {"detail": str, "code": str, "errors": {field: [str]}} (errors only for validation). '
        "On any path, an unknown host answers 404 and a suspended tenant's host 403."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- CORS -------------------------------------------------------------------------
# No origin is allowed by default; each tenant lists its own browser origins
# (Tenant.cors_allowed_origins, set by its admins or by operators), consulted
# per request by tenants.cors through django-cors-headers' check_request_enabled.
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False  # bearer tokens, never cookies, cross-origin
CORS_EXPOSE_HEADERS = ["X-Request-ID", "Retry-After"]
CORS_ALLOW_HEADERS = ["accept", "authorization", "content-type", "x-request-id"]
CORS_PREFLIGHT_MAX_AGE = 600

# --- i18n, static -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security ---------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_ENGINE = "accounts.auth.session_store"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
# HTTPS everywhere in production unless told otherwise; each is its own variable.
# The probes are exempt: a kubelet or load balancer reaches a pod over plain HTTP.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^api/health/", r"^api/metrics/$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production (DJANGO_ENV=production).")
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
# Bodies over this are refused (413) before anything reads them; JSON nested
# deeper than this is refused (400) before it is parsed (core/limits.py).
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=1024 * 1024)
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=64)

# --- Logs -------------------------------------------------------------------------
# structlog renders every line, Django's, Celery's and ours alike: one JSON
# object per line in production, readable text in development. django-structlog
# writes one line per request (request_finished: request_id, tenant, user_id,
# method, path, view, status, duration_ms, ip; core/request_id.py) and binds the
# request id to every line the request causes, tasks included.
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "text")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}.")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# The emailed links' paths carry live one-time tokens: never logged (core/log_redaction.py).
LOG_MASKED_PATHS = [
    r"/(?:activate|password/reset/confirm|email/reset/confirm)/(?P<uid>[^/\s?]+)/(?P<token>[^/\s?]+)",
    r"/invitation/(?P<token>[^/\s?]+)",
]
_shared_processors: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    masking_paths(LOG_MASKED_PATHS),
]
structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        *_shared_processors,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": structlog.stdlib.ProcessorFormatter,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Tracebacks as data, without local variables (they hold passwords and tokens).
                structlog.processors.ExceptionRenderer(
                    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
                ),
                structlog.processors.JSONRenderer(),
            ],
            "foreign_pre_chain": _shared_processors,
        },
        "text": {
            "()": structlog.stdlib.ProcessorFormatter,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                # Plain tracebacks: rich's would print every frame's locals (passwords, tokens).
                structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback),
            ],
            "foreign_pre_chain": _shared_processors,
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Django's own "Bad Request: /path" lines come after the request's context is
        # gone (no request id) and repeat request_finished; its 5xx lines stay.
        "django.request": {"level": "ERROR"},
        "pgserver": {"level": "WARNING"},
        # django-structlog's request_finished is the access log; the server's own is off.
        "django.server": {"level": "WARNING"},
        "gunicorn.access": {"level": "WARNING"},
    },
}
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG  # one line per request, not two
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True  # already checked by core.request_id
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # core.request_id logs the address the throttles trust

# --- Metrics ------------------------------------------------------------------------
# /api/metrics/ (config/probes.py) answers on any host to a bearer METRICS_TOKEN or
# to an address in METRICS_ALLOWED_NETWORKS; with neither set it is 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
PROMETHEUS_EXPORT_MIGRATIONS = False
# django-tenants wraps this backend: database time and query counts per alias.
ORIGINAL_BACKEND = "django_prometheus.db.backends.postgresql"
