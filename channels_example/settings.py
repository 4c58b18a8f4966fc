"""Settings for channels_example.

Read top to bottom like a configuration file. Everything that differs between a
laptop and production comes from the environment:

    SECRET_KEY     every process (daphne and each runworker) must share it
    DEBUG          "1" (default) or "0"
    ALLOWED_HOSTS  comma-separated; default 127.0.0.1,localhost
    REDIS_URL      unset: the seed's in-memory layer (runserver only);
                   set: asgi_redis, e.g. redis://127.0.0.1:6379/0, or several
                   comma-separated URLs to shard the layer over several servers
    DATABASE_URL   unset: SQLite at SQLITE_PATH (default db.sqlite3 here);
                   set: PostgreSQL, postgres://user:password@host:5432/name
"""
import os
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEBUG = os.environ.get("DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("SECRET_KEY", "development-only-key-never-use-in-production" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG=0, and be the same in every daphne and runworker "
        "process: channel sessions signed by one process are unreadable to the others."
    )
ALLOWED_HOSTS = [host for host in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if host]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "channels_example.apps.ChatConfig",
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

ROOT_URLCONF = "channels_example.urls"
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
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Chat history is stored here (channels_example.models.Message), written by the workers
# off the delivery path (docs/history.md). SQLite suits one host; PostgreSQL, selected
# by DATABASE_URL, serves workers on several hosts.
DATABASE_URL = urlparse(os.environ.get("DATABASE_URL", ""))
if DATABASE_URL.scheme in ("postgres", "postgresql"):
    DATABASES = {
        "default": {
            # Django 2.2's backend, fixed for psycopg2 2.9 (the first to support Python 3.11).
            "ENGINE": "channels_example.postgresql",
            "NAME": unquote(DATABASE_URL.path.lstrip("/")),
            "USER": unquote(DATABASE_URL.username or ""),
            "PASSWORD": unquote(DATABASE_URL.password or ""),
            "HOST": DATABASE_URL.hostname or "",
            "PORT": str(DATABASE_URL.port or ""),
            # A worker stores a message every few milliseconds: keep its connection open.
            "CONN_MAX_AGE": 600,
        }
    }
elif DATABASE_URL.scheme:
    raise ImproperlyConfigured(
        "DATABASE_URL must be postgres://user:password@host:port/name, not %r; "
        "leave it unset for SQLite." % os.environ["DATABASE_URL"]
    )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", os.path.join(BASE_DIR, "db.sqlite3")),
            # Two workers may write at once; the second waits for the first instead of failing.
            "OPTIONS": {"timeout": 20},
            # As for PostgreSQL: opening the file (and setting it up, apps.py) on every message costs more than storing it.
            "CONN_MAX_AGE": 600,
        }
    }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_L10N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_DIR = os.path.join(BASE_DIR, "static")
STATICFILES_DIRS = [STATIC_DIR]

# The seed's CHANNEL_LAYERS block. Capacity counts messages waiting in one channel,
# not a rate; the stock defaults (10 in memory, 100 in asgi_redis) drop ordinary
# bursts. The load promised (docs/deploying.md): 1000 sockets connecting at once,
# rooms whose members together send 1000 messages/s, and any one client's burst of
# up to SOCKET_BACKLOG frames; a socket that floods beyond that is closed with 1013.
SOCKET_BACKLOG = 1000
REDIS_HOSTS = [url.strip() for url in os.environ.get("REDIS_URL", "").split(",") if url.strip()]
# Longest life of a socket: daphne is started with --websocket_timeout set to this,
# and group membership and channel sessions expire with it.
WEBSOCKET_LIFETIME = 86400
if REDIS_HOSTS:
    CHANNEL_LAYERS = {
        "default": {
            # asgi_redis's layer, made explicit and fast (layers.py). REDIS_LAYER=stock
            # selects asgi_redis's own, unchanged, for comparison (docs/performance.md).
            "BACKEND": {
                "project": "channels_example.layers.RedisChannelLayer",
                "stock": "asgi_redis.RedisChannelLayer",
            }[os.environ.get("REDIS_LAYER", "project")],
            "ROUTING": "channels_example.routing.channel_routing",
            "CONFIG": {
                # Several URLs shard the layer: asgi_redis spreads channels and groups over them.
                "hosts": REDIS_HOSTS,
                "capacity": 1000,
                "channel_capacity": {
                    # A storm of 1000 sockets connecting at once (stock: 73 % refused with 503).
                    "websocket.connect": 5000,
                    # Shared by every socket: 20 sockets at their SOCKET_BACKLOG at once.
                    "websocket.receive": 20000,
                    # Daphne drops a disconnect silently when this is full.
                    "websocket.disconnect": 5000,
                    # Chat messages on their way to the database: as many as websocket.receive.
                    "chat.history": 20000,
                    # One daphne's process channel carries every message for all its sockets
                    # (a Group message once per daphne with the project's layer): a full
                    # SOCKET_BACKLOG burst fanned out to a room of 50 even with the stock layer.
                    "daphne.response*": 50000,
                },
                # A message nobody reads within a minute is stale for chat.
                "expiry": 60,
                # Members whose daphne died without a disconnect leave after this.
                "group_expiry": WEBSOCKET_LIFETIME,
            },
        },
    }
    if os.environ.get("REDIS_LAYER", "project") == "project":
        CHANNEL_LAYERS["default"]["CONFIG"]["socket_backlog"] = SOCKET_BACKLOG
    # Workers on any host must see the same channel session: keep it in Redis too.
    CHANNEL_SESSION_ENGINE = "channels_example.redis_sessions"
else:
    CHANNEL_LAYERS = {
        "default": {
            # asgiref.inmemory.ChannelLayer, the seed's, with the same two changes.
            "BACKEND": "channels_example.layers.InMemoryChannelLayer",
            "ROUTING": "channels_example.routing.channel_routing",
            "CONFIG": {
                # The in-memory layer has one capacity for every channel (it ignores
                # channel_capacity): the largest of the Redis figures.
                "capacity": 50000,
                "socket_backlog": SOCKET_BACKLOG,
                "expiry": 60,
                "group_expiry": WEBSOCKET_LIFETIME,
            },
        },
    }
    # runserver is the only process, so its local-memory cache can hold the channel
    # sessions, and they stay off the database on every message.
    CHANNEL_SESSION_ENGINE = "django.contrib.sessions.backends.cache"

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
# The database keeps at least this many messages per room; older ones are pruned by the
# worker that stores every HISTORY_PRUNE_EVERY-th message of the room, so never more
# than HISTORY_RETENTION + HISTORY_PRUNE_EVERY - 1.
HISTORY_RETENTION = 1000
HISTORY_PRUNE_EVERY = 100
# A room's numbering and recent list stay in Redis this long after its last message;
# after that they are read back from the database when the room is used again.
HISTORY_IDLE_EXPIRY = 7 * 86400
# A daphne process refreshes its heartbeat in Redis every second; one silent for
# DAPHNE_HEARTBEAT_TTL seconds is taken for dead, and a sweep (asked for by every daphne
# every PRESENCE_SWEEP_INTERVAL seconds) removes its sockets from presence and Groups.
DAPHNE_HEARTBEAT_TTL = 5
PRESENCE_SWEEP_INTERVAL = 2

# Deliver each socket's messages in the order sent (channels_example/ordering.py).
# "0" turns it off, only to measure what it costs (bench/ordering_cost.py).
ORDERED_DELIVERY = os.environ.get("ORDERED_DELIVERY", "1") == "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "channels_example": {
            "handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO"), "propagate": False,
        },
    },
}
