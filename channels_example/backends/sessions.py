"""Channel sessions stored in Redis (CHANNEL_SESSION_ENGINE when REDIS_URL is set).

A channel session must be readable by whichever worker, on whichever host, handles
the socket's next message, so it cannot live in one process's memory; keeping it in
Redis rather than the database keeps a database query off every chat message.
Keys live on the channel layer's own Redis servers (channels_example.backends.shards),
on the server of the socket's room, and expire with the socket (WEBSOCKET_LIFETIME).

The payload is signed with SECRET_KEY like every Django session, which is why every
daphne and runworker process must share the same SECRET_KEY.

Each worker keeps the sessions it read or wrote in memory, for
CHANNEL_SESSION_CACHE_SECONDS (at most CHANNEL_SESSION_CACHE_SIZE of them): a channel
session is written when its socket connects, before daphne passes on any of its frames,
and when it disconnects, after its last; every frame between reads it. So a frame costs
no round trip for its session, and channels' question after every load (does it exist?)
is answered by the load: found, or, on a connect, missing. The empty session channels then
creates is written by the save after the consumer, with what the consumer put in it: a connect
costs one write, not two. A session deleted or flushed elsewhere (a new password) is seen here
when the entry expires; the socket itself is closed at once (channels_example.accounts).
"""
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase
from django.core.exceptions import ImproperlyConfigured

from channels_example.backends.shards import PerDeployment

KEY_PREFIX = "channels_example:session:"


def _no_redis():
    raise ImproperlyConfigured("channels_example.backends.sessions keeps sessions on the channel layer's Redis "
                               "servers: use it with an asgi_redis channel layer (REDIS_URL).")


_shards = PerDeployment(local=_no_redis, redis=lambda shards: shards)


def _redis_for(session_key):
    """On the socket's room's server while a consumer handles one of its messages (shards.socket_keys_on)."""
    return _shards().socket_client(KEY_PREFIX + session_key)


class _Read:
    """The sessions this process read or wrote lately: session key -> (when, its data), decoded once
    (a session's signature is checked when it is read from Redis, not on every frame)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = OrderedDict()

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] >= settings.CHANNEL_SESSION_CACHE_SECONDS:
                return None
            return dict(entry[1])

    def put(self, key, data):
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (time.monotonic(), dict(data))
            while len(self._entries) > settings.CHANNEL_SESSION_CACHE_SIZE:
                self._entries.popitem(last=False)

    def forget(self, key):
        with self._lock:
            self._entries.pop(key, None)


_read = _Read()


class SessionStore(SessionBase):
    def get_expiry_age(self, **kwargs):
        if self.get("_session_expiry") is None:
            return settings.WEBSOCKET_LIFETIME
        return super().get_expiry_age(**kwargs)

    def load(self):
        data = None
        if self.session_key is not None:
            data = _read.get(self.session_key)
            if data is None:
                encoded = _redis_for(self.session_key).get(KEY_PREFIX + self.session_key)
                if encoded is not None:
                    data = self.decode(encoded.decode("ascii"))
                    _read.put(self.session_key, data)
                else:
                    self._missing = self.session_key
        if data is None:
            self._session_key = None
            return {}
        return data

    def exists(self, session_key):
        """Asked by channels right after loading a socket's session (on its connect, it finds none):
        the load's answer stands."""
        if session_key == getattr(self, "_missing", None):
            return False
        return _read.get(session_key) is not None or bool(_redis_for(session_key).exists(KEY_PREFIX + session_key))

    def create(self):
        while True:
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return

    def save(self, must_create=False):
        if self.session_key is None:
            return self.create()
        key = self.session_key
        if must_create and key == getattr(self, "_missing", None) and not self._get_session(no_load=True):
            # channels creating a socket's session, empty, before its consumer runs (the load just
            # found none): the save after the consumer writes it, with what the consumer put in it.
            # This gives up channels' guard against two consumers creating one socket's session at
            # once (the second would be retried): on a connect the only other one is a disconnect
            # racing it, and that finds no room in the session either way.
            return
        session = self._get_session(no_load=must_create)
        stored = _redis_for(key).set(KEY_PREFIX + key, self.encode(session), ex=self.get_expiry_age(), nx=must_create)
        if must_create and not stored:
            raise CreateError
        _read.put(key, session)

    def delete(self, session_key=None):
        key = session_key or self.session_key
        if key is not None:
            _read.forget(key)
            _redis_for(key).delete(KEY_PREFIX + key)

    @classmethod
    def clear_expired(cls):
        """Redis expires the keys itself."""
