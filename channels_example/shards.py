"""The Redis servers of this deployment (settings.REDIS_HOSTS), for the project's own keys.

Channel sessions and per-socket ordering state are spread over the same servers as
the channel layer, each key on the server chosen by a hash of its name, so that every
daphne and worker process on every host finds a key on the same server.
"""
import binascii

import redis
from django.conf import settings

_clients = {}
_scripts = {}


def client_for(key):
    """The redis-py client of the server that holds ``key``."""
    hosts = settings.REDIS_HOSTS
    return client_for_url(hosts[binascii.crc32(key.encode("utf-8")) % len(hosts)])


def client_for_url(url):
    if url not in _clients:
        _clients[url] = redis.StrictRedis.from_url(url)
    return _clients[url]


def run_script(source, shard_key, keys, args):
    """Run the Lua ``source`` on the server that holds ``shard_key``, on ``keys`` with ``args``.

    Each script is registered once per server; redis-py then calls it by its SHA and
    loads it again by itself after a Redis restart.
    """
    client = client_for(shard_key)
    script = _scripts.get((id(client), source))
    if script is None:
        script = _scripts[id(client), source] = client.register_script(source)
    return script(keys=keys, args=args, client=client)
