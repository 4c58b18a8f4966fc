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

Everything that reaches Redis through ``connection(index)`` follows the master: the
layer's reader in daphne, its outbox, its Lua scripts and heartbeats, and the project's
own keys (channels_example.backends.shards: sessions, ordering, rooms, presence).
"""
import threading

import asgi_redis
import redis
from redis.sentinel import Sentinel

from channels_example.layers.redis import FastRedisLayer


class RedisSentinelChannelLayer(FastRedisLayer, asgi_redis.RedisSentinelChannelLayer):
    def __init__(self, hosts=None, services=None, password=None, sentinel_password=None, connection_kwargs=None,
                 **config):
        self._sentinel_hosts = [tuple(host) for host in hosts]
        self._master_kwargs = dict(connection_kwargs or {}, **({"password": password} if password else {}))
        self._sentinel_kwargs = {"password": sentinel_password} if sentinel_password else None
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
            clients[service_name] = self.sentinel().master_for(service_name, redis_class=redis.Redis)
        return clients[service_name]

    def timed_connection(self, index, timeout):
        return self.sentinel().master_for(self.services[index], redis_class=redis.StrictRedis,
                                          socket_timeout=timeout, socket_connect_timeout=timeout)
