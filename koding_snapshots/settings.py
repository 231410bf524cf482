"""Settings, read from the environment with defaults that work on one machine.

Every variable is listed in the README's configuration table. A bad value stops the service at
start with a sentence naming the variable (see `koding_snapshots.env`).
"""

import os
from datetime import timedelta
from pathlib import Path

from koding_snapshots.env import (
    ConfigError,
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_ipv4_subnet,
    env_list,
    env_networks,
    env_rate,
    env_redis_url,
    env_str,
    secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0

# Local state of a development install: the SQLite database and the generated secret key.
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_bool("PRODUCTION", False)
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key("SECRET_KEY", production=PRODUCTION, key_file=DATA_DIR / "secret_key")
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise ConfigError("ALLOWED_HOSTS must be set in production (PRODUCTION=1).")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "core",
    "accounts",
    "vms",
    "snapshots",
    "schedules",
    "sharing",
    "transfers",
    "operations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as its documentation asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "koding_snapshots.urls"
WSGI_APPLICATION = "koding_snapshots.wsgi.application"
ASGI_APPLICATION = "koding_snapshots.asgi.application"

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

DATABASES = {"default": env_database("DATABASE_URL", DATA_DIR / "db.sqlite3")}
# Tests on SQLite use a file, not memory, so that a worker process can share the database.
DATABASES["default"]["TEST"] = (
    {"NAME": str(DATA_DIR / "test.sqlite3")}
    if (DATABASES["default"]["ENGINE"].endswith("sqlite3"))
    else {}
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A custom user model from the first migration: the plan and anything else an account carries
# hang off it without a later, painful swap of AUTH_USER_MODEL.
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # Counts failed logins and refuses further attempts once a limit is reached.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login brute-force protection: after LOGIN_FAILURE_LIMIT wrong passwords for one user name from
# one client address, further attempts of that pair get 429 for LOGIN_LOCKOUT_MINUTES. Per pair,
# not per name or per address: a stranger guessing cannot lock the owner out from elsewhere, and
# one address guessing many names (or a proxy every client comes through) cannot lock the whole
# site. The lockout says the same whether or not the account exists.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The client's address, read as everything else that limits by address reads it.
AXES_CLIENT_IP_CALLABLE = "core.client_address.client_address"
# Proxies (addresses or networks) whose X-Forwarded-For is believed; without one, the address
# is the connection's own (REMOTE_ADDR) and the header is ignored, since anyone can send it.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
# Who may create an account: anyone ("open"), only someone with an invitation code to a shared
# snapshot ("invitation"), or no one ("closed": admins create accounts).
SIGNUP = env_choice("SIGNUP", "open", ["open", "invitation", "closed"])
# Sign-up attempts one client address may make, e.g. "10/hour" (DRF's rate format).
SIGNUP_RATE = env_rate("SIGNUP_RATE", "10/hour")
# The plan (its slug) a new account gets. Free by default: a stranger who signs up gets one VM
# and no snapshots until an admin moves them to a larger plan.
SIGNUP_PLAN = env_str("SIGNUP_PLAN", "free")
# SSH public keys one user may keep (the keys their VMs let in).
SSH_KEYS_MAX = env_int("SSH_KEYS_MAX", 20, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Outside production the app serves static files straight from the source folders.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG

# Redis, when given, carries the task queue and the cache; otherwise the database does. The
# cache holds the API throttle and console rate counters, so it must be one that every web and
# worker process shares: never a per-process memory cache. Its keys carry the queue's name, so
# installations (and test runs) sharing a Redis keep their counters apart.
REDIS_URL = env_redis_url("REDIS_URL")
# Processes with the same queue name share work; the test command gives each run its own.
QUEUE_NAME = env_str("QUEUE_NAME", "koding-snapshots")
CACHE_TABLE = "cache"
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": QUEUE_NAME,
        }
    }
else:
    # `manage.py createcachetable` makes the table (bin/run does; so does the test database).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
        }
    }

# --- Hypervisor ---------------------------------------------------------------------------
LIBVIRT_URI = env_str("LIBVIRT_URI", "qemu:///system" if IS_ROOT else "qemu:///session")
# Hosts may be reached over qemu+tcp only when this is on: it has neither encryption nor
# authentication, so it is for a private network or a test machine (use qemu+tls or qemu+ssh).
ALLOW_TCP_HOSTS = env_bool("ALLOW_TCP_HOSTS", False)
# libvirt's in-process fake driver (test:///default) as a host: for the test suite only.
ALLOW_TEST_HOSTS = env_bool("ALLOW_TEST_HOSTS", False)
# "qemu" is software emulation: slower guests, but it works everywhere, nested VMs included.
LIBVIRT_DOMAIN_TYPE = env_choice("LIBVIRT_DOMAIN_TYPE", "qemu", ["qemu", "kvm"])
# Disk layers, kernels and console logs live under this folder, one storage pool per host.
STORAGE_DIR = Path(
    env_str(
        "STORAGE_DIR",
        "/var/lib/koding-snapshots" if IS_ROOT else str(DATA_DIR / "storage"),
    )
)
# Empty: the pool is named for this installation ("koding-snapshots-<first 8 hex digits of its
# identity>"), so installations sharing a libvirtd never share a pool.
STORAGE_POOL = env_str("STORAGE_POOL", "")
# Guests live on a network the service defines on each host (NAT, DHCP, isolated ports, a
# filter of its own): they reach the outside world where the host does (unless GUEST_INTERNET is
# off), DHCP and DNS on their gateway, and nothing else of the host, its ranges or each other.
# Empty: no guest has a network (their network card's cable is pulled).
GUEST_NETWORK = env_str("GUEST_NETWORK", "koding-snapshots")
GUEST_SUBNET = env_ipv4_subnet("GUEST_SUBNET", "10.213.0.0/16")
GUEST_INTERNET = env_bool("GUEST_INTERNET", True)
# Each VM's SSH server is published on a port of its host from this range (kept for the VM's
# life, while it runs; "" publishes none), reached as `ssh -p PORT user@SSH_HOST` (SSH_HOST:
# the name people use for the host; the page's own host name when empty).
SSH_PORTS = os.environ.get("SSH_PORTS", "22000-22999").strip()
SSH_HOST = os.environ.get("SSH_HOST", "").strip()
# vCPUs a host registered without a given capacity may hand out per CPU it has (overcommit).
HOST_VCPU_RATIO = env_int("HOST_VCPU_RATIO", 4, minimum=1, maximum=64)
# Disk placement may hand out per byte of the pool's file system, likewise: a VM's disk is thin
# (its layers take what the guest writes), so its size is rarely all used.
HOST_DISK_RATIO = env_int("HOST_DISK_RATIO", 4, minimum=1, maximum=64)

# --- Exports and imports ------------------------------------------------------------------
# Exported snapshots (one compressed qcow2 each) wait here for their download, outside any pool.
EXPORT_DIR = Path(env_str("EXPORT_DIR", str(DATA_DIR / "exports")))
# Uploaded disk images are checked and rewritten here before anything else reads them.
QUARANTINE_DIR = Path(env_str("QUARANTINE_DIR", str(DATA_DIR / "quarantine")))
# Hours an export can be downloaded; then its file is deleted.
EXPORT_HOURS = env_int("EXPORT_HOURS", 24, minimum=1, maximum=24 * 30)
# The largest file an import may upload, in MiB.
IMPORT_MAX_MIB = env_int("IMPORT_MAX_MIB", 20480, minimum=1)
# Uploads are refused (503) while the quarantine's file system has less than this free (MiB).
IMPORT_MIN_FREE_MIB = env_int("IMPORT_MIN_FREE_MIB", 1024, minimum=0)
# The longest one qemu-img run on an uploaded image may take (check, measure, rewrite), seconds.
IMPORT_TIMEOUT_SECONDS = env_int("IMPORT_TIMEOUT_SECONDS", 300, minimum=1, maximum=86400)

# --- Operations and the task queue -------------------------------------------------------
# The longest operation a worker runs: a full-copy "new VM from snapshot" of a large disk
# (about 3 s per GiB written on a modest host) or a graceful stop that waits for the guest.
OPERATION_TIMEOUT = env_int("OPERATION_TIMEOUT", 1800, minimum=60, maximum=86400)
# Seconds a guest gets to power off after the ACPI button before it is forced off.
VM_STOP_TIMEOUT = env_int("VM_STOP_TIMEOUT", 60, minimum=1, maximum=3600)
# Disk chains deeper than this many layers are flattened in the background.
MAX_CHAIN_DEPTH = env_int("MAX_CHAIN_DEPTH", 16, minimum=2, maximum=200)
# How long something in libvirt that no row accounts for must stay so before the reconciler
# removes it (work being set up right now is never mistaken for it).
RECONCILE_GRACE_MINUTES = env_int("RECONCILE_GRACE_MINUTES", 10, minimum=0)
# A worker renews the lease of the operation it runs every quarter of this many seconds; once a
# lease has run out, the worker is presumed dead and any live worker repairs the operation.
WORKER_LEASE_SECONDS = env_int("WORKER_LEASE_SECONDS", 20, minimum=4, maximum=600)
# On SIGTERM or Ctrl-C a worker waits this long for the operations it runs to finish; what is
# still running then is stopped and repaired by the next worker (see `manage.py worker`).
WORKER_STOP_GRACE = env_int("WORKER_STOP_GRACE", 5, minimum=0, maximum=3600)
# How long the records that only grow are kept: reconcile reports, worker heartbeats, orphan
# sightings, failed task records. Idempotency keys are kept for IDEMPOTENCY_KEY_HOURS.
RECORD_RETENTION_DAYS = env_int("RECORD_RETENTION_DAYS", 30, minimum=1)
IDEMPOTENCY_KEY_HOURS = env_int("IDEMPOTENCY_KEY_HOURS", 24, minimum=1)
# Lines one user may type into consoles per minute.
CONSOLE_LINES_PER_MINUTE = env_int("CONSOLE_LINES_PER_MINUTE", 30, minimum=1)
# The terminal (a VM's console in the browser) is a WebSocket served by the ASGI side, which
# bin/run runs on TERMINAL_PORT of the same host as the pages; TERMINAL_URL, when set, is where
# browsers reach it instead (e.g. "wss://vms.example.com" behind a proxy that forwards
# /vms/<id>/terminal/ws/ there). A session without input for TERMINAL_IDLE_SECONDS ends.
TERMINAL_PORT = env_int("TERMINAL_PORT", 8001, minimum=0, maximum=65535)
TERMINAL_URL = os.environ.get("TERMINAL_URL", "").rstrip("/")
TERMINAL_IDLE_SECONDS = env_int("TERMINAL_IDLE_SECONDS", 15 * 60, minimum=10)
# A worker that has not reported for this long is reported as down by the health check.
WORKER_HEARTBEAT_MAX_AGE = env_int("WORKER_HEARTBEAT_MAX_AGE", 180, minimum=30)
# /healthz answers callers other than staff from a result at most this many seconds old, so
# a flood of probes makes at most one round of checks per interval in each web process.
HEALTHZ_CACHE_SECONDS = env_int("HEALTHZ_CACHE_SECONDS", 5, minimum=0, maximum=60)

# django-q2 delivers a task again when it is not acknowledged within `retry` seconds. A task must
# therefore be killed (`timeout`) before that happens, and `timeout` must outlast the longest
# operation, or a slow but healthy operation would be cut short:
#     OPERATION_TIMEOUT  <  timeout = OPERATION_TIMEOUT + 60  <  retry = timeout + 300
# The 60 s let an operation that hit its own deadline record that it failed; the 300 s cover a
# busy broker. `max_attempts = 1` stops a failed task from being run again by the queue, and every
# task claims its operation with a conditional update, so even a redelivered task is a no-op.
Q_CLUSTER = {
    "name": QUEUE_NAME,
    "workers": env_int("WORKERS", 4, minimum=1, maximum=64),
    "timeout": OPERATION_TIMEOUT + 60,
    "retry": OPERATION_TIMEOUT + 60 + 300,
    "max_attempts": 1,
    "ack_failures": True,
    # Successful tasks are not kept: the Operation rows are the record, and django-q2 prunes
    # kept results by loading (and locking) all of them at the end of every task.
    "save_limit": -1,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # The database queue with a wake-up per task (operations/broker.py): a worker starts a task
    # as soon as it is committed, and asks the database every `poll` seconds only in case a
    # wake-up was lost.
    Q_CLUSTER["broker_class"] = "operations.broker.WakingORM"
    Q_CLUSTER["poll"] = 0.2

# Crash-safety tests only: places where a worker stops and waits to be killed (see
# operations/failpoints.py). Empty in normal use.
FAILPOINTS = env_list("FAILPOINTS", [])
FAILPOINT_DIR = env_str("FAILPOINT_DIR", str(DATA_DIR / "failpoints"))

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.api.common.Pagination",
    "DEFAULT_THROTTLE_CLASSES": ["core.api.common.MutationThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only: form encodings read an empty field as "not given", which is not what the
    # schema says (an empty name is refused, not ignored).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "operations.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Changes (POST, PATCH, DELETE) one user may make through the API, e.g. "120/min".
API_MUTATION_RATE = env_str("API_MUTATION_RATE", "120/min")
SPECTACULAR_SETTINGS = {
    "TITLE": "Koding Snapshots API",
    "DESCRIPTION": (
        "Everything the pages do. Long actions answer 202 Accepted with the operation that "
        "carries them out (poll it at its `Location`). Send `Idempotency-Key` on a POST to make "
        "a retry safe. Authenticate with `Authorization: Bearer <token>` (create tokens on the "
        "API tokens page) or the browser session."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    "APPEND_COMPONENTS": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "SECURITY": [{"bearer": []}],
    # A snapshot's kind and state show in more than one component (a snapshot, a node of the
    # tree): one name each, whichever component meets them first.
    "ENUM_NAME_OVERRIDES": {
        "SnapshotKindEnum": "snapshots.models.SnapshotKind",
        "SnapshotStateEnum": "snapshots.models.SnapshotState",
    },
}

# --- Production hardening -------------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR"]),
    },
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
