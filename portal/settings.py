"""Trainyard's one settings module. Every deployment-specific value comes from the environment.

`python manage.py up` and the test suite start embedded PostgreSQL and Redis and export
DATABASE_URL and REDIS_URL before Django loads, so this module never has to know about them.

Values are read with `portal.env.env` (the node plane's one reader, `workers.env.Env`): a
missing or malformed value raises `ImproperlyConfigured` naming the variable. The settings the
node plane reads too are defined once, in `workers.config`, with one bound for both planes.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from portal.env import env
from portal.lib.secretfile import state_secret
from workers import config as shared

# Generic Django classes (ModelAdmin[Job]) subscriptable at runtime, as django-stubs types them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(env.text("TRAINYARD_STATE_DIR", str(BASE_DIR / ".trainyard")))

DEBUG = env.flag("DJANGO_DEBUG", False)
_secret = env.optional("DJANGO_SECRET_KEY")
if _secret is None:
    if not DEBUG and not env.flag("TRAINYARD_DEV", False):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set outside development"
        )
    # Generated once per state directory (0600), never a constant that ships with the code.
    _secret = state_secret(STATE_DIR / "secret-key", nbytes=50)
SECRET_KEY = _secret
ALLOWED_HOSTS = env.items("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.items("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "axes",
    "csp",
    "portal.ops",
    "portal.audit",
    "portal.accounts",
    "portal.catalog",
    "portal.cluster",
    "portal.jobs",
    "portal.registry",
    "portal.dashboard",
    "portal.experiments",
    "portal.notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files before anything else: no session, no login redirect, 404 for traversal.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.audit.middleware.ClientAddressMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"

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
                # The nav's unread notification count.
                "portal.notifications.context_processors.unread_notifications",
            ],
        },
    },
]


def _database(url: str) -> dj_database_url.DBConfig:
    try:
        database = dj_database_url.parse(
            url,
            conn_max_age=env.integer("DATABASE_CONN_MAX_AGE", 0, minimum=0),
            conn_health_checks=True,
            test_options={"NAME": env.optional("DATABASE_TEST_NAME")},
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
    if database.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must be a postgresql:// URL")
    # libpq names a unix-socket directory as `?host=/path` (embedded PostgreSQL's URL does):
    # Django's place for it is HOST, where dbshell and the test database find it too.
    socket_dir = database.get("OPTIONS", {}).pop("host", None)
    if socket_dir:
        database["HOST"] = str(socket_dir)
    return database


DATABASES = {"default": _database(env.text("DATABASE_URL", "postgresql:///trainyard"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = shared.redis_url(env)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Where `collectstatic` puts files for WhiteNoise (or a reverse proxy) to serve; unset, WhiteNoise
# serves straight from the finders below.
_static_root = env.optional("TRAINYARD_STATIC_ROOT")
STATIC_ROOT = Path(_static_root) if _static_root else None
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Front-end libraries come from npm (package-lock.json), never pasted into the repo.
    ("vendor/uplot", BASE_DIR / "node_modules" / "uplot" / "dist"),
    ("vendor/swagger-ui", BASE_DIR / "node_modules" / "swagger-ui-dist"),
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.flag("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header turns "no credentials" into 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Read-only tokens stay read-only on every view, including ones that forget to say so.
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "portal.accounts.authentication.TokenScopePermission",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "portal.lib.drf.BoundedLimitOffsetPagination",
    "DEFAULT_PARSER_CLASSES": ["portal.lib.drf.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "portal.lib.drf.api_exception_handler",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trainyard API",
    "DESCRIPTION": "Submit and watch training jobs on a Trainyard cluster.",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # 3.1 speaks JSON Schema 2020-12, which is what pydantic emits for the job request.
    "OAS_VERSION": "3.1.0",
    # /api/v1/docs/ loads Swagger UI from our own static files (npm), not a CDN: it works
    # offline and under a CSP that allows only this origin's scripts.
    "SWAGGER_UI_DIST": f"/{STATIC_URL}vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": f"/{STATIC_URL}vendor/swagger-ui/favicon-32x32.png",
    # Jobs and datasets both have a `state`; each enum gets a name of its own.
    "ENUM_NAME_OVERRIDES": {
        "DatasetStateEnum": "portal.catalog.models.Dataset.State",
        "SearchStateEnum": "portal.experiments.models.Search.State",
        "TrialStateEnum": "portal.experiments.models.Trial.State",
        "SearchMethodEnum": "portal.experiments.models.Search.Method",
        # A job's best_metric and a search's metric: the same two choices.
        "ValidationMetricEnum": ["val_loss", "val_accuracy"],
        # What a notification, a preference or a webhook names (portal.notifications).
        "NotificationEventEnum": "portal.notifications.models.Event",
    },
}

# The channel layer carries live events to browsers (lossy by design: pages catch up from
# PostgreSQL). Two channels-redis layers, chosen by measurement (bench/RESULTS.md, "Channel
# layers side by side"):
# - "pubsub" (the default): one PUBLISH per group event, and each web process takes one copy
#   of it off Redis and hands it to its own sockets of that group. Nothing is kept for a
#   consumer that is not listening; a page that misses an event sees a gap in its cursor and
#   reconnects.
# - "core": a Redis list per consumer channel, one copy per group member (so 1,000 viewers of
#   a job cost 1,000 writes per event), bounded by `capacity` and `expiry`.
TRAINYARD_CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    "pubsub": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL}]},
    },
    "core": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # channels_redis waits in BZPOPMIN for 5 s, and redis-py 8's default socket timeout
            # is also 5 s: a socket idle that long would crash its consumer. Outlast the wait.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
            "capacity": 1000,
            "expiry": 30,
        },
    },
}
_channel_layer = env.text("TRAINYARD_CHANNEL_LAYER", "pubsub")
if _channel_layer not in TRAINYARD_CHANNEL_LAYERS:
    raise ImproperlyConfigured(
        f"TRAINYARD_CHANNEL_LAYER must be one of {', '.join(TRAINYARD_CHANNEL_LAYERS)}, "
        f"not {_channel_layer!r}"
    )
CHANNEL_LAYERS = {"default": TRAINYARD_CHANNEL_LAYERS[_channel_layer]}

# Celery: the control app. JSON only, so nothing that crosses the broker is ever unpickled.
CELERY_BROKER_URL = REDIS_URL
# Results are kept only for the few calls the web process waits on (a model's dry run, a
# prediction: `portal.lib.calls`); every other task ignores its result.
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 300
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Seconds between two cluster samples, the dashboard's history.
TRAINYARD_SAMPLE_S = env.number("TRAINYARD_SAMPLE_S", 60.0, above=0.0)
CELERY_BEAT_SCHEDULE = {
    "scheduler-tick": {
        "task": "portal.jobs.tasks.scheduler_tick",
        "schedule": env.number("TRAINYARD_SCHEDULER_TICK_S", 5.0, above=0.0),
    },
    "reap-nodes": {
        "task": "portal.jobs.tasks.reap_nodes",
        "schedule": env.number("TRAINYARD_REAP_TICK_S", 2.0, above=0.0),
    },
    # Re-sends validation of uploads whose validation was lost (a dead worker, a lost message).
    "requeue-stale-datasets": {
        "task": "portal.catalog.tasks.requeue_stale_datasets",
        "schedule": 60.0,
    },
    # Webhook deliveries whose task was lost, or whose worker died mid-try, are sent again.
    "resend-webhook-deliveries": {
        "task": "portal.notifications.tasks.webhook_deliveries_resend",
        "schedule": 30.0,
    },
    # The dashboard's history: one cluster sample per tick (portal.dashboard.tasks).
    "sample-cluster": {
        "task": "portal.dashboard.tasks.sample_cluster",
        "schedule": TRAINYARD_SAMPLE_S,
    },
    # Log retention: deletes the lines of jobs that finished TRAINYARD_LOG_RETENTION_DAYS ago.
    "expire-logs": {
        "task": "portal.jobs.tasks.expire_logs",
        "schedule": 3600.0,
    },
    # Stalled and idle jobs (portal.jobs.watch); each tick is one idle sample of a job's GPUs.
    "watch-jobs": {
        "task": "portal.jobs.tasks.watch_jobs",
        "schedule": env.number("TRAINYARD_WATCH_TICK_S", 30.0, above=0.0),
    },
    # Long runs' charts read blocks of points (portal.jobs.series), rolled up on this tick.
    "roll-metric-blocks": {
        "task": "portal.jobs.tasks.roll_metric_blocks",
        "schedule": env.number("TRAINYARD_METRIC_ROLLUP_S", 10.0, above=0.0),
    },
    "prune-node-samples": {
        "task": "portal.cluster.tasks.prune_node_samples",
        "schedule": 600.0,
    },
    # Searches: new metric points for the pruner, and trials to launch if a message was lost
    # (portal.experiments.tasks).
    "searches-tick": {
        "task": "portal.experiments.tasks.searches_tick",
        "schedule": env.number("TRAINYARD_SEARCH_TICK_S", 2.0, above=0.0),
    },
}

# A running job whose ranks report no step for max(factor x its median step time, minimum)
# seconds is flagged stalled (docs/telemetry.md "Stalled and idle jobs").
TRAINYARD_STALL_FACTOR = env.number("TRAINYARD_STALL_FACTOR", 10.0, above=0.0)
TRAINYARD_STALL_MIN_S = env.number("TRAINYARD_STALL_MIN_S", 120.0, above=0.0)


def _idle_policy(text: str, name: str) -> dict[str, float | int | bool]:
    """`percent:window_s:min_samples:stop|keep`, e.g. `5:1800:10:keep`."""
    parts = text.split(":")
    try:
        percent, window, samples, action = float(parts[0]), float(parts[1]), int(parts[2]), parts[3]
    except (IndexError, ValueError):
        raise ImproperlyConfigured(
            f"{name}={text!r} is not percent:window_s:min_samples:stop|keep"
        ) from None
    if len(parts) != 4 or action not in {"stop", "keep"} or window <= 0 or samples < 1:
        raise ImproperlyConfigured(f"{name}={text!r} is not percent:window_s:min_samples:stop|keep")
    return {
        "percent": percent,
        "window_s": window,
        "min_samples": samples,
        "stop": action == "stop",
    }


# A job whose GPUs all stay below `percent` utilisation for `window_s` seconds and at least
# `min_samples` watch ticks is flagged idle, and stopped when the policy says `stop`.
# TRAINYARD_IDLE_POOLS overrides per pool: `pool=percent:window_s:min_samples:stop|keep,...`.
TRAINYARD_IDLE_POLICY = _idle_policy(
    env.text("TRAINYARD_IDLE_POLICY", "5:1800:10:keep"), "TRAINYARD_IDLE_POLICY"
)
TRAINYARD_IDLE_POOLS = {
    pool.strip(): _idle_policy(policy, "TRAINYARD_IDLE_POOLS")
    for pool, _, policy in (item.partition("=") for item in env.items("TRAINYARD_IDLE_POOLS", []))
}

# Trainyard itself.
TRAINYARD_STORAGE_ROOT = Path(env.text("TRAINYARD_STORAGE_ROOT", str(STATE_DIR / "storage")))
# Object storage for datasets instead of the local root: any fsspec URL (`s3://bucket/prefix`),
# with that back end's own package and credentials. Unset: files under TRAINYARD_STORAGE_ROOT.
TRAINYARD_STORAGE_URL = env.optional("TRAINYARD_STORAGE_URL")
# The largest dataset file an upload may carry (bytes); larger ones answer 413.
TRAINYARD_DATASET_MAX_BYTES = env.integer(
    "TRAINYARD_DATASET_MAX_BYTES", 512 * 1024 * 1024, minimum=1
)
# What validation parses at most (`workers.datasets.Limits`): rows, columns, the bytes a zip
# may inflate to and by what ratio (a zip bomb stops at the first chunk past either), and the
# side images are resized to.
TRAINYARD_DATASET_MAX_ROWS = env.integer("TRAINYARD_DATASET_MAX_ROWS", 5_000_000, minimum=1)
TRAINYARD_DATASET_MAX_COLUMNS = env.integer("TRAINYARD_DATASET_MAX_COLUMNS", 10_000, minimum=1)
TRAINYARD_DATASET_MAX_UNZIPPED_BYTES = env.integer(
    "TRAINYARD_DATASET_MAX_UNZIPPED_BYTES", 4 << 30, minimum=1
)
TRAINYARD_DATASET_MAX_ZIP_RATIO = env.number("TRAINYARD_DATASET_MAX_ZIP_RATIO", 200.0, above=0.0)
TRAINYARD_DATASET_IMAGE_SIZE = env.integer(
    "TRAINYARD_DATASET_IMAGE_SIZE", 32, minimum=8, maximum=1024
)
# A validation claimed (or an upload not claimed) this long ago without a result is re-queued.
TRAINYARD_DATASET_VALIDATION_STALE_S = env.number(
    "TRAINYARD_DATASET_VALIDATION_STALE_S", 600.0, above=0.0
)
TRAINYARD_HEARTBEAT_S = shared.heartbeat_s(env)
# A node that misses this many heartbeats is offline and its attempts are lost.
TRAINYARD_MISSED_HEARTBEATS = env.integer("TRAINYARD_MISSED_HEARTBEATS", 3, minimum=1)
TRAINYARD_CANCEL_GRACE_S = shared.cancel_grace_s(env)
# An attempt may run at most this long unless its request asks for less or more.
TRAINYARD_DEFAULT_MAX_RUN_TIME_S = env.number(
    "TRAINYARD_DEFAULT_MAX_RUN_TIME_S", 24 * 3600.0, above=0.0
)
# Cluster-wide quota defaults, for every user and every team (a Quota row's blank limit falls
# back to these; None: unlimited). Each is TRAINYARD_QUOTA_DEFAULT_<NAME> in the environment,
# e.g. TRAINYARD_QUOTA_DEFAULT_MAX_GPUS=8 (docs/quotas.md).
TRAINYARD_QUOTA_DEFAULTS: dict[str, int | float | None] = {
    **{
        name: (
            env.integer(f"TRAINYARD_QUOTA_DEFAULT_{name.upper()}", 0, minimum=0)
            if env.raw(f"TRAINYARD_QUOTA_DEFAULT_{name.upper()}") is not None
            else None
        )
        for name in ("max_gpus", "max_cpu_slots", "max_running_jobs", "max_queued_jobs")
    },
    **{
        name: (
            env.number(f"TRAINYARD_QUOTA_DEFAULT_{name.upper()}", 0.0, at_least=0.0)
            if env.raw(f"TRAINYARD_QUOTA_DEFAULT_{name.upper()}") is not None
            else None
        )
        for name in ("max_gpu_hours", "max_cpu_slot_hours")
    },
    **{
        name: (
            env.integer(f"TRAINYARD_QUOTA_DEFAULT_{name.upper()}", 0, minimum=-100, maximum=100)
            if env.raw(f"TRAINYARD_QUOTA_DEFAULT_{name.upper()}") is not None
            else None
        )
        for name in ("min_priority", "max_priority")
    },
}
# The rolling window of the GPU-hours and CPU-slot-hours limits.
TRAINYARD_QUOTA_WINDOW_DAYS = env.number("TRAINYARD_QUOTA_WINDOW_DAYS", 30.0, above=0.0)
# Fair share: a user's past use of the cluster weighs half as much after this many hours.
TRAINYARD_FAIR_SHARE_HALF_LIFE_H = env.number(
    "TRAINYARD_FAIR_SHARE_HALF_LIFE_H", 24.0 * 7, above=0.0
)
# How many waiting jobs' records one scheduler pass rewrites when only their queue position
# moved (a changed reason or estimate is always written); the rest catch up in later passes.
TRAINYARD_WHY_PENDING_WRITES = env.integer("TRAINYARD_WHY_PENDING_WRITES", 1000, minimum=1)
# Preemption (docs/scheduling.md): a preempted attempt has this long between SIGTERM and
# SIGKILL to checkpoint, and no attempt is preempted before it has run the minimum.
TRAINYARD_PREEMPT_GRACE_S = env.number("TRAINYARD_PREEMPT_GRACE_S", 60.0, at_least=0.0)
TRAINYARD_PREEMPT_MIN_RUN_S = env.number("TRAINYARD_PREEMPT_MIN_RUN_S", 300.0, at_least=0.0)
# A requeued job waits this long after its attempt ended, doubled per further restart.
TRAINYARD_REQUEUE_BACKOFF_S = env.number("TRAINYARD_REQUEUE_BACKOFF_S", 2.0, at_least=0.0)
TRAINYARD_REQUEUE_BACKOFF_MAX_S = env.number("TRAINYARD_REQUEUE_BACKOFF_MAX_S", 60.0, at_least=0.0)
# An active attempt that its node neither runs nor claims this long after it was placed is
# lost (its run message was lost or expired, or it ended without a report).
TRAINYARD_ATTEMPT_START_GRACE_S = env.number("TRAINYARD_ATTEMPT_START_GRACE_S", 30.0, above=0.0)
TRAINYARD_STREAM_PREFIX = shared.stream_prefix(env)
# Read by the nodes; checked here too, so `manage.py up` (whose node agent inherits this
# environment) refuses a bad value at start rather than on the first stream write.
TRAINYARD_STREAM_MAXLEN = shared.stream_maxlen(env)
# Per-job log caps: each node's launcher ships its share and stops with one notice line;
# ingest drops whatever is past the whole. Retention: lines of jobs finished this many days
# ago are deleted by the hourly `expire-logs` beat task (0 keeps them forever).
TRAINYARD_LOG_MAX_BYTES_PER_JOB = shared.log_max_bytes_per_job(env)
TRAINYARD_LOG_MAX_LINES_PER_JOB = shared.log_max_lines_per_job(env)
TRAINYARD_LOG_RETENTION_DAYS = env.integer("TRAINYARD_LOG_RETENTION_DAYS", 30, minimum=0)
# A node whose shares of attempts fail this many times in a row is cordoned (0: never).
TRAINYARD_NODE_FAILURES_TO_CORDON = env.integer("TRAINYARD_NODE_FAILURES_TO_CORDON", 3, minimum=0)
# Before a job is queued, a control worker (this queue) builds its model for the dataset's
# shape; a submit waits this long for the answer, then says no worker answered (503).
TRAINYARD_DRY_RUN_QUEUE = env.text("TRAINYARD_DRY_RUN_QUEUE", "control")
TRAINYARD_DRY_RUN_TIMEOUT_S = env.number("TRAINYARD_DRY_RUN_TIMEOUT_S", 10.0, above=0.0)
# A search ends a succeeded trial once its last epoch's metric is stored, or this long after
# the job ended (the exit and the last metric points travel on different streams).
TRAINYARD_SEARCH_METRICS_GRACE_S = env.number(
    "TRAINYARD_SEARCH_METRICS_GRACE_S", 15.0, at_least=0.0
)
# Predictions: how long the web process waits for the predict worker (the first request for a
# version also loads it), and how many loaded models each predict worker keeps (an LRU).
TRAINYARD_PREDICT_TIMEOUT_S = env.number("TRAINYARD_PREDICT_TIMEOUT_S", 30.0, above=0.0)
TRAINYARD_PREDICT_CACHE_MODELS = env.integer("TRAINYARD_PREDICT_CACHE_MODELS", 4, minimum=1)
# The largest custom model file (Python source) a user may upload.
TRAINYARD_MODEL_CODE_MAX_BYTES = env.integer(
    "TRAINYARD_MODEL_CODE_MAX_BYTES", 256 * 1024, minimum=1024
)
# Whether the dashboard shows everyone (not only admins) the top users and teams by use;
# off by default, so a normal user sees cluster totals but no one else's name.
TRAINYARD_DASHBOARD_SHOW_USERS = env.flag("TRAINYARD_DASHBOARD_SHOW_USERS", False)
# Cluster samples older than this are deleted when the next one is written.
TRAINYARD_SAMPLE_RETENTION_DAYS = env.integer("TRAINYARD_SAMPLE_RETENTION_DAYS", 35, minimum=1)
# Nodes' health history (portal.cluster.models.NodeSample), behind each job's timeline: at
# most one reading per node and device per step, kept this many hours.
TRAINYARD_NODE_SAMPLE_S = env.integer("TRAINYARD_NODE_SAMPLE_S", 10, minimum=1, maximum=3600)
TRAINYARD_NODE_SAMPLE_RETENTION_H = env.integer(
    "TRAINYARD_NODE_SAMPLE_RETENTION_H", 7 * 24, minimum=1
)
# `/metrics` for Prometheus answers only a scrape that sends `Authorization: Bearer <this>`;
# unset (the default), it answers 404 (docs/deploying.md).
TRAINYARD_METRICS_TOKEN = env.optional("TRAINYARD_METRICS_TOKEN")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.text("TRAINYARD_LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        # django-axes announces itself at INFO in every process; lockouts are WARNING.
        "axes.apps": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # The periodic ticks (every 2-5 s) would log "sending", "received" and "succeeded" lines
        # forever; failures still show (WARNING and up). TRAINYARD_TICK_LOG_LEVEL=INFO: all.
        "celery.beat": {"level": env.text("TRAINYARD_TICK_LOG_LEVEL", "WARNING")},
        "celery.app.trace": {"level": env.text("TRAINYARD_TICK_LOG_LEVEL", "WARNING")},
        "celery.worker.strategy": {"level": env.text("TRAINYARD_TICK_LOG_LEVEL", "WARNING")},
    },
}


# ---- Security: hardening against hostile input and abuse (see docs/security.md) -------------
# Kept together so the threat model reads in one place.

AUTHENTICATION_BACKENDS = [
    # django-axes refuses a locked-out login before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.integer("TRAINYARD_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env.number("TRAINYARD_LOGIN_COOLOFF_MIN", 15.0, above=0.0))
# Username and address together: a guesser is stopped without letting anyone lock a user out
# from everywhere by typing their name wrong.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind a reverse proxy, the client's address is in X-Forwarded-For (set TRAINYARD_PROXY_COUNT).
AXES_IPWARE_PROXY_COUNT = env.integer("TRAINYARD_PROXY_COUNT", 0, minimum=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Throttle state (submissions per user) is shared by every web process through Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "trainyard-cache",
    }
}
# Notifications (docs/notifications.md). Outgoing webhooks: each try waits at most
# TIMEOUT_S and reads at most MAX_RESPONSE_BYTES of the answer; a failed try is retried after
# BACKOFF_S, doubling up to BACKOFF_MAX_S, MAX_ATTEMPTS tries in all. Private and loopback
# addresses are refused (SSRF) unless ALLOW_PRIVATE, for development and tests.
TRAINYARD_WEBHOOK_ALLOW_PRIVATE = env.flag("TRAINYARD_WEBHOOK_ALLOW_PRIVATE", False)
TRAINYARD_WEBHOOK_TIMEOUT_S = env.number("TRAINYARD_WEBHOOK_TIMEOUT_S", 5.0, above=0.0)
TRAINYARD_WEBHOOK_MAX_RESPONSE_BYTES = env.integer(
    "TRAINYARD_WEBHOOK_MAX_RESPONSE_BYTES", 64 * 1024, minimum=1
)
TRAINYARD_WEBHOOK_MAX_ATTEMPTS = env.integer("TRAINYARD_WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
TRAINYARD_WEBHOOK_BACKOFF_S = env.number("TRAINYARD_WEBHOOK_BACKOFF_S", 10.0, above=0.0)
TRAINYARD_WEBHOOK_BACKOFF_MAX_S = env.number("TRAINYARD_WEBHOOK_BACKOFF_MAX_S", 3600.0, above=0.0)
# Where the portal is reached from outside ("https://trainyard.example.org"): links in
# webhook bodies and emails are absolute when set, paths otherwise.
TRAINYARD_PUBLIC_URL = (env.optional("TRAINYARD_PUBLIC_URL") or "").rstrip("/")
# Email through Django's mail backend: sent only when TRAINYARD_NOTIFY_EMAIL is on, to users
# with an address who did not turn email off.
TRAINYARD_NOTIFY_EMAIL = env.flag("TRAINYARD_NOTIFY_EMAIL", False)
EMAIL_BACKEND = env.text("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.text("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env.integer("DJANGO_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.text("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.text("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.flag("DJANGO_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env.integer("DJANGO_EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env.text("DJANGO_DEFAULT_FROM_EMAIL", "trainyard@localhost")

# Job submissions per user, from the API and the form together ("30/minute"; empty: no limit).
_submit_rate = env.optional("TRAINYARD_SUBMIT_RATE") or "30/minute"
TRAINYARD_SUBMIT_RATE = None if _submit_rate.lower() in {"off", "none"} else _submit_rate

# Request bodies: the API's JSON parser and Django's form parsing both refuse larger ones.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.integer("TRAINYARD_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

# Static files: WhiteNoise serves STATIC_ROOT (collectstatic) when set, else the finders; it
# serves only the files it indexed at start-up, so traversal in any encoding is a plain 404.
WHITENOISE_USE_FINDERS = STATIC_ROOT is None

# Content-Security-Policy: scripts only from our own origin, never inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # Progress bars set their width in a style attribute; styles cannot run code.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Behind TLS (DJANGO_SECURE_COOKIES=true): secure cookies (above), HSTS and HTTPS redirects.
# The reverse proxy must set X-Forwarded-Proto, which is trusted only then.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if SESSION_COOKIE_SECURE:
    SECURE_SSL_REDIRECT = env.flag("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.integer("DJANGO_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env.flag("DJANGO_HSTS_PRELOAD", True)

# WebSocket handshakes must come from the portal's own origins: scheme, host and port.
# Default: http(s)://<each allowed host> on the web port, plus the CSRF trusted origins.
TRAINYARD_WEBSOCKET_ORIGINS = env.items("TRAINYARD_WEBSOCKET_ORIGINS", [])
