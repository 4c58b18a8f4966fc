"""The project's own Redis keys, on the channel layer's own Redis servers.

Channel sessions, each socket's ordering state, each room's numbering, recent history
and members are kept in Redis when the channel layer is asgi_redis's (REDIS_URL set),
and in this process's memory under runserver. In Redis every key lives on the server
asgi_redis's consistent hash picks for it, reached through the layer's own
``connection()``: every daphne and worker on every host finds a key on the same server,
and there is one list of servers, the layer's ``hosts``.

A socket's own keys (its channel session, its ordering state, its line in its daphne's
index) live on its room's server, not where their own names hash: a consumer handling
the socket's message runs ``with socket_keys_on(room's shard key)``, and
``socket_client`` places them there. So when one shard fails, only the sockets of its
rooms notice (docs/deploying.md, "High availability").

``PerDeployment`` makes that choice once per process, the first time a store is used.
"""
import contextlib
import threading

import redis
from channels import DEFAULT_CHANNEL_LAYER, channel_layers


class Shards:
    """The Redis servers of an asgi_redis channel layer, for keys of our own."""

    def __init__(self, layer):
        self.layer = layer
        self._scripts = {}

    def client(self, key):
        """The redis-py client of the server that holds ``key``: asgi_redis's, a ``redis.Redis``
        (redis-py 2's legacy class: ``zadd(name, member=score)``, ``setex(name, value, time)``)."""
        return self.layer.connection(self.layer.consistent_hash(key))

    def socket_client(self, key):
        """The client of the server holding one of a socket's own keys: its room's
        (``socket_keys_on``), or ``key``'s own outside a room."""
        return self.layer.connection(self.socket_index(key))

    def socket_index(self, key):
        """The shard ``socket_client(key)`` is on."""
        index = getattr(_home, "index", None)
        return self.layer.consistent_hash(key) if index is None else index

    def run(self, source, keys, args, shard_key=None):
        """Run the Lua ``source`` on ``keys`` and ``args``, on the server of ``shard_key`` (default: the first key).

        redis-py calls a script by its SHA, and loads it again by itself on a server that
        does not know it (a new shard, or one restarted).
        """
        return self.run_on(self.client(shard_key or keys[0]), source, keys, args)

    def run_on(self, client, source, keys, args):
        """``run`` on the server of this client (``socket_client``)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        return script(keys=keys, args=args, client=client)


    def run_then_wait(self, client, source, keys, args, replicas, timeout_ms):
        """``run_on``, then Redis's WAIT on the same connection: ``(result, how many replicas have it)``.

        WAIT counts the replicas that have every write of the connection it is sent on, so it
        goes in one pipeline with the script.
        """
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        # EVALSHA itself: a Script in a pipeline costs a SCRIPT EXISTS round trip first.
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *(list(keys) + list(args)))
        pipe.execute_command("WAIT", replicas, timeout_ms)
        try:
            result, acknowledged = pipe.execute()
        except redis.exceptions.NoScriptError:  # a new master, or one restarted: nothing ran
            client.script_load(source)
            return self.run_then_wait(client, source, keys, args, replicas, timeout_ms)
        return result, acknowledged


def of_deployment():
    """Shards over the default channel layer's servers, or None when it is not asgi_redis's."""
    layer = channel_layers[DEFAULT_CHANNEL_LAYER]
    return Shards(layer) if hasattr(layer, "consistent_hash") else None


_home = threading.local()


@contextlib.contextmanager
def socket_keys_on(shard_key=None, index=None):
    """While it lasts, this thread's ``socket_client`` places a socket's keys on the server of
    ``shard_key`` (or on shard ``index``); with neither, where each key's name hashes."""
    shards = of_deployment()
    before = getattr(_home, "index", None)
    if shards is not None and index is None and shard_key is not None:
        index = shards.layer.consistent_hash(shard_key)
    _home.index = index if shards is not None else None
    try:
        yield
    finally:
        _home.index = before


class PerDeployment:
    """A store chosen once per process: ``redis(shards)`` over a Redis channel layer, else ``local()``."""

    _all = []

    def __init__(self, local, redis):
        self.local, self.redis = local, redis
        self._chosen = None
        self._choosing = threading.Lock()  # runserver's threads share one store, made once
        PerDeployment._all.append(self)

    def __call__(self):
        if self._chosen is None:
            with self._choosing:
                if self._chosen is None:
                    shards = of_deployment()
                    self._chosen = self.redis(shards) if shards is not None else self.local()
        return self._chosen

    @classmethod
    def forget_all(cls):
        """Choose again on next use (for tests that switch the channel layer)."""
        for store in cls._all:
            store._chosen = None


_pingers = {}


def timed_client(layer, index, timeout):
    """A client of shard ``index`` of an asgi_redis layer, of its own, whose every call gives up after
    ``timeout`` seconds: the project's layers make one; asgi_redis's own, here, through Sentinel too."""
    if hasattr(layer, "timed_connection"):
        return layer.timed_connection(index, timeout)
    if hasattr(layer, "services"):  # asgi_redis.RedisSentinelChannelLayer
        return layer._sentinel.master_for(layer.services[index], redis_class=redis.StrictRedis,
                                          socket_timeout=timeout, socket_connect_timeout=timeout)
    options = dict(layer.connection(index).connection_pool.connection_kwargs, socket_timeout=timeout,
                   socket_connect_timeout=timeout)
    return redis.StrictRedis(**options)


def ping(layer, timeout):
    """``{"shard N": "ok" or the error}`` for every shard of an asgi_redis layer.

    Through clients of their own with a timeout: a Redis that hangs (not one that is down)
    would otherwise hold the asking thread for ever.
    """
    results = {}
    for index in range(layer.ring_size):
        try:
            pinger = _pingers.get((id(layer), index))
            if pinger is None:
                pinger = _pingers[id(layer), index] = timed_client(layer, index, timeout)
            pinger.ping()
            results["shard %d" % index] = "ok"
        except redis.RedisError as error:
            results["shard %d" % index] = "%s: %s" % (type(error).__name__, error)
    return results
