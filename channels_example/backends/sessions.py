"""Channel sessions stored in Redis (CHANNEL_SESSION_ENGINE when REDIS_URL is set).

A channel session must be readable by whichever worker, on whichever host, handles
the socket's next message, so it cannot live in one process's memory; keeping it in
Redis rather than the database keeps a database query off every chat message.
Keys live on the channel layer's own Redis servers (channels_example.backends.shards),
and expire with the socket (WEBSOCKET_LIFETIME).

The payload is signed with SECRET_KEY like every Django session, which is why every
daphne and runworker process must share the same SECRET_KEY.
"""
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
    return _shards().client(KEY_PREFIX + session_key)


class SessionStore(SessionBase):
    def get_expiry_age(self, **kwargs):
        if self.get("_session_expiry") is None:
            return settings.WEBSOCKET_LIFETIME
        return super().get_expiry_age(**kwargs)

    def load(self):
        data = None
        if self.session_key is not None:
            data = _redis_for(self.session_key).get(KEY_PREFIX + self.session_key)
        if data is None:
            self._session_key = None
            return {}
        return self.decode(data.decode("ascii"))

    def exists(self, session_key):
        return bool(_redis_for(session_key).exists(KEY_PREFIX + session_key))

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
        data = self.encode(self._get_session(no_load=must_create))
        stored = _redis_for(key).set(KEY_PREFIX + key, data, ex=self.get_expiry_age(), nx=must_create)
        if must_create and not stored:
            raise CreateError

    def delete(self, session_key=None):
        key = session_key or self.session_key
        if key is not None:
            _redis_for(key).delete(KEY_PREFIX + key)

    @classmethod
    def clear_expired(cls):
        """Redis expires the keys itself."""
