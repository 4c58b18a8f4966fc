"""The project's Redis layer over Redis Sentinel: each shard a service whose master Sentinel names.

asgi_redis's own ``RedisSentinelChannelLayer`` underneath (``hosts`` are the sentinels,
``services`` the shards, in shard order), with the project's changes (FastRedisLayer), and
three of its own:

* **One master client per service and thread, kept.** asgi_redis asks Sentinel for a new
  client (and so opens a new connection) on every call unless ``sentinel_refresh_interval``
  is set, and then drops its clients at each refresh. Here each service has one client
  per thread, whose connection pool (redis-py's SentinelConnectionPool) asks the sentinels
  for the master on every new connection: so after a failover, the first error on the old
  master (a refused connection, or ``READONLY`` once it is back as a replica) closes the
  connection, and the next one goes to the new master. No process is restarted. Per
  thread, because that pool, on seeing a new master, closes every connection it has,
  those other threads are using included (redis-py 2.10.6: "I/O operation on closed
  file" in daphne's reader while its writer thread reconnects).
* **Passwords**: ``password`` for the masters (and replicas), ``sentinel_password`` for
  the sentinels, which asgi_redis cannot pass.
* ``timed_connection`` for health checks, through Sentinel too.
* **A master that hangs is left as one that died** (``socket_timeout``). A host that stops
  answering closes no connection, so its clients would wait on it for ever, and only a
  new connection asks the sentinels again. Here every call to a master or a sentinel
  gives up after ``socket_timeout`` seconds, as a connection error: everything that
  survives a dead master (the outbox holding frames, a worker going on with the other
  shards) then applies, and the next connection goes where the sentinels now say.

Everything that reaches Redis through ``connection(index)`` follows the master: the
layer's reader in daphne, its outbox and its Lua scripts, and the project's
own keys (channels_example.backends.shards: sessions, ordering, rooms, presence).
"""
import threading

import asgi_redis
import redis
from redis.sentinel import Sentinel, SentinelManagedConnection

from channels_example.layers.redis import FastRedisLayer


class TimingOutConnection(SentinelManagedConnection):
    """A connection to a master on which a timeout is a lost connection (redis-py raises TimeoutError,
    which the code that survives a lost master does not take for one)."""

    def read_response(self):
        try:
            return super().read_response()
        except redis.exceptions.TimeoutError as error:
            self.disconnect()
            raise redis.exceptions.ConnectionError("%s: no answer in %s s" % (error, self.socket_timeout))

    def send_packed_command(self, command):
        try:
            return super().send_packed_command(command)
        except redis.exceptions.TimeoutError as error:
            raise redis.exceptions.ConnectionError("%s: no answer in %s s" % (error, self.socket_timeout))


class RedisSentinelChannelLayer(FastRedisLayer, asgi_redis.RedisSentinelChannelLayer):
    def __init__(self, hosts=None, services=None, password=None, sentinel_password=None, connection_kwargs=None,
                 socket_timeout=None, **config):
        self._sentinel_hosts = [tuple(host) for host in hosts]
        timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout} \
            if socket_timeout else {}
        self._master_kwargs = dict(connection_kwargs or {}, **timeouts,
                                   **({"password": password} if password else {}))
        self._sentinel_kwargs = dict(timeouts, **({"password": sentinel_password} if sentinel_password else {}))
        self._masters = threading.local()
        super().__init__(hosts=self._sentinel_hosts, services=services, connection_kwargs=self._master_kwargs,
                         **config)

    def sentinel(self):
        """A Sentinel client like asgi_redis's, with the sentinels' password too (made once)."""
        if not isinstance(getattr(self, "_own_sentinel", None), Sentinel):
            self._own_sentinel = Sentinel(self._sentinel_hosts, sentinel_kwargs=self._sentinel_kwargs,
                                          **self._master_kwargs)
        return self._own_sentinel

    def _master_for(self, service_name):
        clients = self._masters.__dict__
        if service_name not in clients:
            clients[service_name] = self.sentinel().master_for(service_name, redis_class=redis.Redis,
                                                               connection_class=TimingOutConnection)
        return clients[service_name]

    def timed_connection(self, index, timeout):
        return self.sentinel().master_for(self.services[index], redis_class=redis.StrictRedis,
                                          socket_timeout=timeout, socket_connect_timeout=timeout)
