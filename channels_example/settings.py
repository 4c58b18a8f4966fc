"""Settings for channels_example.

Read top to bottom like a configuration file. Everything that differs between a
laptop and production comes from the environment:

    SECRET_KEY     every process (daphne and each runworker) must share it
    DEBUG          "1" or "0"; default "1" for runserver, migrate and the tests, "0"
                   for the servers: daphne, runworker and wsgi (see SERVER_PROCESS)
    ALLOWED_HOSTS  comma-separated; default 127.0.0.1,localhost
    REDIS_URL      unset: the seed's in-memory layer (runserver only);
                   set: asgi_redis, e.g. redis://127.0.0.1:6379/0, or several
                   comma-separated URLs to shard the layer over several servers
    REDIS_SENTINELS  host:port,host:port,...: Redis Sentinel instead (high availability),
    REDIS_SERVICES   with one Sentinel service per shard, in shard order (default "chat");
    REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD  the masters' and the sentinels' passwords
    DATABASE_URL   unset: SQLite at SQLITE_PATH (default db.sqlite3 here);
                   set: sqlite:///path, or PostgreSQL: postgres://user:password@host:5432/name
    LOG_LEVEL      every process's log lines: the project's, channels', daphne's, Django's (default INFO)
    CHAT_RATE_LIMIT          frames per socket, <rate>/s:<burst> or off (default 5/s:20)
    CHAT_SOCKETS_PER_CLIENT  open sockets per client address, or off (default 100)
    CHANNEL_LAYER_KEYS       comma-separated keys: asgi_redis encrypts channel messages in Redis
    REDIS_LAYER              "project" (default): the project's Redis layers; "stock": asgi_redis's own
    CHAT_GUESTS              "1" (default): people without an account may chat; "0": sign in first
    METRICS_TOKEN            lets a scraper elsewhere than loopback read /metrics and /status
    LOG_FORMAT               "plain" (default) or "json"
    HTTPS                    "1" behind a TLS proxy: secure cookies, HSTS, an https redirect (default "0")
"""
import os
from datetime import timedelta

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# daphne (asgi.py), runworker (manage.py) and wsgi.py mark their process as a server
# before the settings load. A server never falls back to development defaults: DEBUG is
# off and SECRET_KEY must be given, unless the environment says otherwise. Everywhere
# else (runserver, migrate, the tests) the chat runs with no environment at all.
SERVER_PROCESS = os.environ.get("CHANNELS_EXAMPLE_SERVER") == "1"
DEBUG = os.environ.get("DEBUG", "0" if SERVER_PROCESS else "1") == "1"
SECRET_KEY = os.environ.get("SECRET_KEY", "development-only-key-never-use-in-production" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off, as it is for daphne and runworker, and be the same in "
        "every daphne and runworker process: channel sessions signed by one process are unreadable to the others."
    )
ALLOWED_HOSTS = [host for host in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if host]

INSTALLED_APPS = [
    # First: its runserver (channels_example/management/commands) runs the chat's clock beside
    # channels' daphne and worker threads, and the first app that has a command wins.
    "channels_example.apps.ChatConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /static/: the project's files and the admin's, from STATIC_ROOT (from the apps' folders under
    # DEBUG). Every HTTP request in channels 1.x goes through a worker, so that is where they are served.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "channels_example.middleware.security_headers",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The reader's language: their choice (the switch on each page, kept in the session and a
    # cookie), else their browser's Accept-Language, else English.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# X-Content-Type-Options: nosniff and X-Frame-Options: DENY; the Content-Security-Policy
# and Referrer-Policy come from channels_example.middleware (Django 2.2 has no setting for them).
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# ---- HTTPS=1: browsers reach the chat over https, through the TLS proxy in front of daphne
# (docs/security.md#what-a-proxy-in-front-should-add); `manage.py check --deploy` is then clean.
# Off by default: over plain http (scripts/prod on loopback) a browser never sends a secure cookie back.
HTTPS = os.environ.get("HTTPS", "0") == "1"
# The proxy says whether the browser's request was https (nginx: proxy_set_header
# X-Forwarded-Proto $scheme); only the proxy may reach daphne's port, or a client could say so too.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
# The session cookie is who a person is in the chat: never over plain http. The socket's
# handshake (wss://) carries secure cookies like any https request.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
# A page asked for over http is sent to https. Not /healthz, /metrics and /status: load balancers
# and scrapers ask daphne for them directly, over http, and would follow no redirect. (The socket's
# handshake never reaches Django: daphne answers it.)
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^(healthz|metrics|status)"]
# Browsers remember for a year to use https only, on the chat's host and its subdomains. Not
# preloaded: SECURE_HSTS_PRELOAD binds the whole domain, which only its owner can decide (W021).
SECURE_HSTS_SECONDS = 365 * 86400 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SILENCED_SYSTEM_CHECKS = [
    "security.W021",  # HSTS preload: above.
    # SECURE_BROWSER_XSS_FILTER's X-XSS-Protection header is obsolete: browsers removed the XSS
    # auditor it drove, the Content-Security-Policy covers what it did, and Django 3.0 dropped this check.
    "security.W007",
]

ROOT_URLCONF = "channels_example.urls"

# Accounts (channels_example/accounts.py, docs/accounts.md). Django's ModelBackend, keeping
# each user in the worker's memory for USER_CACHE_SECONDS: @channel_session_user asks for
# the user on every frame, and a database query per chat message would cost more than
# the message. A user deactivated in the admin is refused at most this long after.
AUTHENTICATION_BACKENDS = ["channels_example.accounts.CachedModelBackend"]
USER_CACHE_SECONDS = 60
LOGIN_REDIRECT_URL = LOGOUT_REDIRECT_URL = "/"
# Guests (no account: a name from ?handle= or guest-xxxxxx) may chat; CHAT_GUESTS=0 admits
# signed-in users only.
CHAT_GUESTS = os.environ.get("CHAT_GUESTS", "1") == "1"
# The longest a moderator may mute a name in a room (chat/moderation.py).
MAX_MUTE_SECONDS = 86400

# ---- Passwords and failed logins (channels_example/logins.py; docs/security.md#logins-and-passwords).
# Django's four password validators, on sign-up and on /accounts/password_change/: sign-up took "x".
AUTH_PASSWORD_VALIDATORS = [{"NAME": "django.contrib.auth.password_validation." + name} for name in (
    "UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
    "NumericPasswordValidator")]
# django-axes counts failed logins in the database, which every worker on every host shares, and
# its middleware answers a locked-out login (with logins.refuse). CachedModelBackend is an
# AxesBackend: it refuses a locked-out login before it hashes the password.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
# At most AXES_FAILURE_LIMIT failures per username (from any address) and per client address
# (for any username) within AXES_COOLOFF_TIME of each other; then the name or the address waits
# out the cool-off from the failure that locked it. 10 a quarter: 40 guesses an hour at one name
# (docs/security.md has the measured figures), where no person mistypes a password ten times.
AXES_FAILURE_LIMIT = 10
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCK_OUT_BY_USER_OR_IP = True
# The address daphne saw, or the first of X-Forwarded-For under daphne's --proxy-headers (the
# socket cap reads the same), never a header the client sets for Django alone.
AXES_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
# What logins.py changes in axes: a refused login is not counted again, a success clears that
# name's failures from that address only, and the refusal says the wait left (429, Retry-After).
AXES_HANDLER = "channels_example.logins.FailedLogins"
AXES_LOCKOUT_CALLABLE = "channels_example.logins.refuse"
# No row per successful login (the chat keeps no login history), and no banner in every process's log.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False

WSGI_APPLICATION = "channels_example.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(BASE_DIR, "templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Chat history is stored here (channels_example.models.Message), written by the workers
# off the delivery path (docs/history.md). SQLite suits one host; PostgreSQL serves workers
# on several hosts. DATABASE_URL is parsed by dj-database-url: sqlite:///path or
# postgres://user:password@host:5432/name; unset, SQLite at SQLITE_PATH.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or "sqlite:///" + os.environ.get("SQLITE_PATH", os.path.join(BASE_DIR, "db.sqlite3")),
        # Workers store messages several times a second: opening the connection (and
        # setting SQLite up, apps.py) each time would cost more than storing them.
        conn_max_age=600,
    ),
}
if DATABASES["default"]["ENGINE"] in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
    # Django 2.2's backend, fixed for psycopg2 2.9 (the first to support Python 3.11).
    DATABASES["default"]["ENGINE"] = "channels_example.backends.postgresql"
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Two workers may write at once; the second waits for the first instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
else:
    raise ImproperlyConfigured("DATABASE_URL must be sqlite:///path or postgres://user:password@host:port/name, "
                               "not %r." % os.environ["DATABASE_URL"])

# The pages, the page's script (through the JavaScript catalogue at /jsi18n/) and Django's own
# pages (accounts, admin) speak English and Simplified Chinese. The translations are the .po
# files in locale/, compiled by the set-up (scripts/_setup.sh); dates and times are the reader's.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [os.path.join(BASE_DIR, "locale")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_L10N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [os.path.join(BASE_DIR, "static")]
# `manage.py collectstatic` gathers the project's files and the admin's here (scripts/prod and the
# README's by-hand block run it); a proxy in front may serve this folder itself (docs/security.md).
STATIC_ROOT = os.path.join(BASE_DIR, "staticfiles")

# The seed's CHANNEL_LAYERS block, and every limit, capacity and timeout of the chat:
# each has one home here, read by daphne, the layer and the workers alike.

# The load promised (docs/deploying.md): 1000 sockets connecting at once, rooms whose
# members together send 1000 messages/s, and any one client's burst of up to
# SOCKET_BACKLOG frames; a socket that floods beyond that is closed with 1013.
SOCKET_BACKLOG = 1000
# A chat message has at most MAX_MESSAGE_LENGTH characters (an error frame says so);
# frames longer than MAX_FRAME_LENGTH never reach Redis: daphne's layer passes them on
# as their length only (daphne itself has no limit, and a client could queue gigabytes).
MAX_MESSAGE_LENGTH = 2000
MAX_FRAME_LENGTH = 16 * 1024
MAX_HANDLE_LENGTH = 32
MAX_ROOM_LENGTH = 100
# How long the layer keeps a message nobody read: a minute is stale for chat. A socket's
# session and ordering state outlive its disconnect as long, for frames still in flight.
CHANNEL_MESSAGE_EXPIRY = 60
# Longest life of a socket: daphne's --websocket_timeout defaults to the layer's
# group_expiry, and group membership and channel sessions expire with it.
WEBSOCKET_LIFETIME = 86400
# A socket's frames and a room's messages delivered in order (chat/ordering.py, layers/gate.py):
# a number that never comes (lost with a killed worker) holds the ones after it this
# long at most; under runserver, a worker thread's lease on a socket's frames expires this
# long after it took it (on Redis one script delivers a frame, and needs no lease).
ORDERING_GAP_SECONDS = 1.0
ORDERING_LEASE_SECONDS = 2
# A daphne process refreshes its heartbeat in Redis every second; one silent for
# DAPHNE_HEARTBEAT_TTL seconds is taken for dead. The clock (manage.py runclock, the
# Procfile's clock line; a thread of runserver) sends chat.sweep every SWEEP_INTERVAL
# seconds: a worker then removes dead daphnes' sockets from their rooms, and delivers
# disconnects held behind a lost frame.
DAPHNE_HEARTBEAT_TTL = 5
SWEEP_INTERVAL = 1
# The clock sends chat.store every STORE_INTERVAL seconds: a worker then stores the chat
# messages waiting in the store queue, in batches (docs/history.md). One consumer call per
# message stored them one transaction each (measured: 1.005 messages per call at 200 a second).
STORE_INTERVAL = 0.2
# Messages waiting to be stored, at most, on each Redis server (and under runserver): past
# it a message is delivered but not stored, and logged. 20 s of 1000 messages a second:
# the database (or the clock) would have stopped long before.
STORE_QUEUE_LIMIT = 20000
# /healthz and /status say so when no clock has ticked for this long (channels_example.clock):
# five sweeps missed.
CLOCK_SILENT_SECONDS = 5

# Bounds against hostile clients, enforced in daphne before anything reaches Redis
# (channels_example/interface/bounds.py; docs/security.md).
# A frame larger than this (bytes) is refused with 1009 from its header: 4 times the UTF-8
# size of the longest frame a worker takes (MAX_FRAME_LENGTH characters of up to 4 bytes).
WEBSOCKET_MAX_PAYLOAD = 16 * MAX_FRAME_LENGTH
# An HTTP body larger than this (bytes) gets 413 before it is read: the chat takes no
# uploads, and its largest form (sign-up) is well under 1 KB. Django checks it again.
HTTP_MAX_BODY = DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024
# Output waiting in daphne for a socket that does not read (bytes beyond Twisted's 64 KiB
# buffer): past it the socket is closed with 1008. A busy room sends a few KB a second.
SOCKET_MAX_UNSENT = 1024 * 1024


def _rate_limit(text):
    """``(rate, burst)`` from "5/s:20", or None for "off"."""
    if text.strip().lower() == "off":
        return None
    rate, _, burst = text.strip().partition("/s:")
    try:
        rate, burst = float(rate), int(burst)
    except ValueError:
        rate = burst = 0
    if rate <= 0 or burst < 1:
        raise ImproperlyConfigured("CHAT_RATE_LIMIT must be <frames>/s:<burst>, such as 5/s:20, or off; not %r" % text)
    return rate, burst


# Each socket's frames: 5 a second sustained and 20 at once never bother a person typing or
# pasting. "off" for load tests and the benchmark, whose clients send up to 30 a second.
CHAT_RATE_LIMIT = _rate_limit(os.environ.get("CHAT_RATE_LIMIT", "5/s:20"))
# Open sockets per client address, the 100 tabs a person might open; loopback clients (a
# proxy on this host) are not counted. "off" behind a proxy elsewhere that sends no
# X-Forwarded-For to daphne's --proxy-headers: every client would share its address.
_sockets_per_client = os.environ.get("CHAT_SOCKETS_PER_CLIENT", "100")
SOCKETS_PER_CLIENT = None if _sockets_per_client.strip().lower() == "off" else int(_sockets_per_client)

# Operations (docs/operations.md). /healthz answers within this many seconds whatever is
# down: a load balancer's check usually waits 2 s.
HEALTH_TIMEOUT = 1.5
# /metrics and /status answer loopback clients; with METRICS_TOKEN set, also a scraper that
# sends "Authorization: Bearer <token>" (and /status a staff user).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

REDIS_HOSTS = [url.strip() for url in os.environ.get("REDIS_URL", "").split(",") if url.strip()]
# Redis Sentinel (docs/deploying.md): the sentinels, and one service (a master and its
# replicas) per shard. A failover promotes a replica; every process follows it.
REDIS_SENTINELS = [(address.rpartition(":")[0], int(address.rpartition(":")[2]))
                   for address in os.environ.get("REDIS_SENTINELS", "").split(",") if address.strip()]
REDIS_SERVICES = [name for name in os.environ.get("REDIS_SERVICES", "chat").split(",") if name]
# Over Sentinel, a call to a master (or a sentinel) that gets no answer for this long counts
# as a lost connection, and the next one asks the sentinels where the master is: a host that
# hangs instead of dying closes no connection. Twice the longest wait in Redis (BLPOP, 1 s).
REDIS_SOCKET_TIMEOUT = 2
# Over Sentinel a numbered message waits (at most this long) until a replica has it, so
# that a failover cannot take back a number the room has seen (docs/deploying.md).
NUMBERING_REPLICAS, NUMBERING_REPLICA_WAIT_MS = (1, 100) if REDIS_SENTINELS else (0, 0)
# A shard whose master had no replica to wait on (after a failover, until the old master is
# back) is not waited on for this long, then asked again.
NUMBERING_NO_REPLICA_SECONDS = 5
# Redis on a network you do not trust: asgi_redis encrypts every channel message (Fernet)
# with the first of these keys and reads with any of them. Sessions are signed, not
# encrypted, and history and members are plain: put TLS (rediss://) in front as well.
CHANNEL_LAYER_KEYS = [key for key in os.environ.get("CHANNEL_LAYER_KEYS", "").split(",") if key]

# The channel layer. Without Redis, the seed's in-memory layer (runserver only). With Redis,
# asgi_redis's options, which asgi_redis's own layers take as they are (REDIS_LAYER=stock)...
STOCK_TRANSPORT = {
    "expiry": CHANNEL_MESSAGE_EXPIRY,
    # Members whose daphne died without a disconnect leave after this at the latest.
    "group_expiry": WEBSOCKET_LIFETIME,
    # Capacity counts messages waiting in one channel, not a rate; asgi_redis's default of
    # 100 drops ordinary bursts.
    "capacity": 1000,
    "channel_capacity": {
        # A storm of 1000 sockets connecting at once (asgi_redis's default: 73 % refused with 503).
        "websocket.connect": 5000,
        # Shared by every socket: 20 sockets at their SOCKET_BACKLOG at once.
        "websocket.receive": 20000,
        # Daphne drops a disconnect silently when this is full.
        "websocket.disconnect": 5000,
        # One daphne's process channel carries every message for all its sockets (a Group
        # message once per daphne): a full SOCKET_BACKLOG burst fanned out to a room of 50.
        "daphne.response*": 50000,
    },
    "symmetric_encryption_keys": CHANNEL_LAYER_KEYS or None,
}
# ...and what the project's layers add (channels_example/layers; REDIS_LAYER=project, the
# default): each an accelerator that docs/architecture.md names with what it buys.
GATE_TRANSPORT = {
    # The numbered streams of a room the join gate orders: its chat messages and its presence events.
    "gate_streams": ["history", "presence"],
    "gap_seconds": ORDERING_GAP_SECONDS,
}
REDIS_TRANSPORT = dict(
    STOCK_TRANSPORT, **GATE_TRANSPORT,
    # Joins before chat, so a busy room does not keep newcomers waiting, and chat before
    # storing it, which is off the delivery path.
    worker_priority=["websocket.connect", "http.request", "websocket.receive", "websocket.disconnect",
                     "chat.sweep", "chat.store"],
    # While no shard can take them (Redis down, a Sentinel failover under way) daphne holds
    # its sockets' frames this long, longer than a failover, and at most as many as
    # websocket.receive holds; past that it refuses the next frame (1013).
    outbox_hold_seconds=10,
    outbox_limit=20000,
)
REDIS_LAYER = os.environ.get("REDIS_LAYER", "project")
if REDIS_LAYER not in ("project", "stock"):
    raise ImproperlyConfigured("REDIS_LAYER is project (the default) or stock, not %r" % REDIS_LAYER)
_STOCK = REDIS_LAYER == "stock"
# asgi_redis's own Sentinel layer waits up to 5 s in BLPOP, and wants a socket timeout longer than that.
_SENTINEL_CONNECTIONS = {"password": os.environ.get("REDIS_PASSWORD") or None, "socket_timeout": 6,
                         "socket_connect_timeout": REDIS_SOCKET_TIMEOUT}
if REDIS_SENTINELS:
    CHANNEL_LAYERS = {
        "default": {
            # asgi_redis's Sentinel layer (stock), or with the project's changes (channels_example/layers/sentinel.py).
            "BACKEND": "asgi_redis.RedisSentinelChannelLayer" if _STOCK else "channels_example.layers.RedisSentinelChannelLayer",
            "ROUTING": "channels_example.routing.channel_routing",
            "CONFIG": dict(STOCK_TRANSPORT, hosts=REDIS_SENTINELS, services=REDIS_SERVICES,
                           # asgi_redis asks the sentinels for a new client on every call without it.
                           connection_kwargs=_SENTINEL_CONNECTIONS, sentinel_refresh_interval=1) if _STOCK else
            dict(REDIS_TRANSPORT, hosts=REDIS_SENTINELS, services=REDIS_SERVICES,
                 password=os.environ.get("REDIS_PASSWORD") or None,
                 sentinel_password=os.environ.get("REDIS_SENTINEL_PASSWORD") or None,
                 socket_timeout=REDIS_SOCKET_TIMEOUT),
        },
    }
    CHANNEL_SESSION_ENGINE = "channels_example.backends.sessions"
elif REDIS_HOSTS:
    CHANNEL_LAYERS = {
        "default": {
            # asgi_redis's layer (stock), or made explicit and fast (channels_example/layers/redis.py);
            # several URLs shard it: asgi_redis spreads channels and groups over them.
            "BACKEND": "asgi_redis.RedisChannelLayer" if _STOCK else "channels_example.layers.RedisChannelLayer",
            "ROUTING": "channels_example.routing.channel_routing",
            "CONFIG": dict(STOCK_TRANSPORT if _STOCK else REDIS_TRANSPORT, hosts=REDIS_HOSTS),
        },
    }
    # Workers on any host must see the same channel session: keep it in Redis too.
    CHANNEL_SESSION_ENGINE = "channels_example.backends.sessions"
else:
    CHANNEL_LAYERS = {
        "default": {
            # asgiref.inmemory.ChannelLayer, the seed's, made explicit (channels_example/layers/inmemory.py).
            "BACKEND": "channels_example.layers.InMemoryChannelLayer",
            "ROUTING": "channels_example.routing.channel_routing",
            # One capacity for every channel (the in-memory layer ignores channel_capacity):
            # the largest of the Redis figures; asgiref's default of 10 drops an ordinary burst.
            "CONFIG": dict(GATE_TRANSPORT, expiry=CHANNEL_MESSAGE_EXPIRY, group_expiry=WEBSOCKET_LIFETIME,
                           capacity=50000),
        },
    }
    # runserver is the only process, so its local-memory cache can hold the channel
    # sessions, and they stay off the database on every message.
    CHANNEL_SESSION_ENGINE = "django.contrib.sessions.backends.cache"

# A worker keeps each channel session it read in memory this long (and at most this many):
# a socket's session is written when it connects and when it disconnects, and read on every
# frame, so a round trip to Redis per frame would buy nothing (backends/sessions.py).
CHANNEL_SESSION_CACHE_SECONDS = CHANNEL_MESSAGE_EXPIRY
CHANNEL_SESSION_CACHE_SIZE = 10000

# The local-memory cache culls at 300 entries by default: one session per socket needs more.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "OPTIONS": {"MAX_ENTRIES": 100000},
    },
}

# History and presence (docs/history.md).
# A joining client receives the room's last HISTORY_LENGTH messages (the classic 1.x demo's 50).
HISTORY_LENGTH = 50
# A client reconnecting with ?since=N receives every message after N, up to the last
# RESUME_LIMIT: an hour of a busy room (a message every 4 s), in one frame of at most a
# few MB; a client that missed more is told the resume is not complete.
RESUME_LIMIT = 1000
# A room's recent list in Redis keeps the last HISTORY_LENGTH messages and every message
# not yet stored, at most this many (as many as the store queue holds: STORE_QUEUE_LIMIT).
RECENT_LIMIT = 20000
# The database keeps at least this many messages per room; older ones are pruned by the
# worker that stores every HISTORY_PRUNE_EVERY-th message of the room, so never more
# than HISTORY_RETENTION + HISTORY_PRUNE_EVERY - 1.
HISTORY_RETENTION = 1000
HISTORY_PRUNE_EVERY = 100
# A room's numbering and recent list stay in Redis this long after its last message;
# after that they are read back from the database when the room is used again.
HISTORY_IDLE_EXPIRY = 7 * 86400

# One format in every process, runserver, daphne, runworker and runclock alike (docs/operations.md#logs):
#   2026-12-01 11:44:43,369 INFO channels_example.consumers 127.0.0.1:53412 joined 'lobby' as ann (guest)
# The project's lines (one per connect, refusal and close, with room, client and code), channels'
# (django.channels: a worker's), daphne's (daphne.*, its access lines as daphne.access) and
# Django's, at LOG_LEVEL; LOG_FORMAT=json writes each as a JSON object, for log shippers.
# channels_example.logs keeps channels' commands from adding a format of their own.
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                 "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": os.environ.get("LOG_FORMAT", "plain")}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}
        for name in ("channels_example", "django.channels", "daphne", "django")
    },
}
