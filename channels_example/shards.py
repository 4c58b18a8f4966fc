"""The Redis servers of this deployment (settings.REDIS_HOSTS), for the project's own keys.

Channel sessions and per-socket ordering state are spread over the same servers as
the channel layer, each key on the server chosen by a hash of its name, so that every
daphne and worker process on every host finds a key on the same server.
"""
import binascii

import redis
from django.conf import settings

_clients = {}


def client_for(key):
    """The redis-py client of the server that holds ``key``."""
    hosts = settings.REDIS_HOSTS
    return client_for_url(hosts[binascii.crc32(key.encode("utf-8")) % len(hosts)])


def all_clients():
    """One client per server, for counters kept on every shard."""
    return [client_for_url(url) for url in settings.REDIS_HOSTS]


def client_for_url(url):
    if url not in _clients:
        _clients[url] = redis.StrictRedis.from_url(url)
    return _clients[url]
