"""Settings for channels_example.

Read top to bottom like a configuration file. Everything that differs between a
laptop and production comes from the environment:

    SECRET_KEY     every process (daphne and each runworker) must share it
    DEBUG          "1" (default) or "0"
    ALLOWED_HOSTS  comma-separated; default 127.0.0.1,localhost
    REDIS_URL      unset: the seed's in-memory layer (runserver only);
                   set: asgi_redis, e.g. redis://127.0.0.1:6379/0, or several
                   comma-separated URLs to shard the layer over several servers
"""
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET_KEY = os.environ.get("SECRET_KEY", "development-only-key-never-use-in-production")
DEBUG = os.environ.get("DEBUG", "1") == "1"
ALLOWED_HOSTS = [host for host in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if host]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "channels_example",
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SQLITE_PATH", os.path.join(BASE_DIR, "db.sqlite3")),
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_L10N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [os.path.join(BASE_DIR, "static")]

# The seed's CHANNEL_LAYERS block. Capacity counts messages waiting in one channel,
# not a rate; the stock defaults (10 in memory, 100 in asgi_redis) drop ordinary
# bursts, so both are chosen here.
REDIS_HOSTS = [url.strip() for url in os.environ.get("REDIS_URL", "").split(",") if url.strip()]
# Longest life of a socket: daphne is started with --websocket_timeout set to this,
# and group membership and channel sessions expire with it.
WEBSOCKET_LIFETIME = 86400
if REDIS_HOSTS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "asgi_redis.RedisChannelLayer",
            "ROUTING": "channels_example.routing.channel_routing",
            "CONFIG": {
                # Several URLs shard the layer: asgi_redis spreads channels and groups over them.
                "hosts": REDIS_HOSTS,
                # One daphne's process channel carries every frame for all its sockets:
                # room of 10 members x 100 msg/s each, with 1 s of headroom, fits.
                "capacity": 10000,
                # A message nobody reads within a minute is stale for chat.
                "expiry": 60,
                # Members whose daphne died without a disconnect leave after this.
                "group_expiry": WEBSOCKET_LIFETIME,
            },
        },
    }
    # Workers on any host must see the same channel session: keep it in Redis too.
    CHANNEL_SESSION_ENGINE = "channels_example.redis_sessions"
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "asgiref.inmemory.ChannelLayer",
            "ROUTING": "channels_example.routing.channel_routing",
            "CONFIG": {
                # runserver's one process: a 1000-message burst from one socket fits.
                "capacity": 1000,
                "expiry": 60,
                "group_expiry": WEBSOCKET_LIFETIME,
            },
        },
    }
    # runserver is the only process, so its local-memory cache can hold the channel
    # sessions, and they stay off the database on every message.
    CHANNEL_SESSION_ENGINE = "django.contrib.sessions.backends.cache"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "channels_example": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    },
}
