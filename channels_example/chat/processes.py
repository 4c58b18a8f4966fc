"""The deployment's processes: which daphnes and workers are alive, by the heartbeat each writes.

Every daphne and every runworker process writes its own once a second, from a thread of its
own (``start_heartbeat``): daphne's starts with its server (channels_example.interface), a
worker's when channels says the worker is ready (``worker_process_ready``). A thread, so that a
busy reactor or a long consumer never looks like a death. The chat writes them, not the channel
layer: they hold on any layer, asgi_redis's own included.

A daphne silent for DAPHNE_HEARTBEAT_TTL seconds is dead: ``presence.dead_daphnes`` names it
until ``forget``, and the sweep removes its sockets from their rooms. Workers are only counted
(/status, /metrics). Each registry is a sorted set of names scored by their last beat, on the
Redis shard its name hashes to; the time is the beating host's, so hosts' clocks must agree
(NTP), as /metrics' latency figure already asks.

Under runserver, one process, nothing can die alone: the local twin knows its one daphne and
the worker threads beside it.
"""
import logging
import os
import socket
import threading
import time

from django.conf import settings

from channels_example.backends.shards import PerDeployment

log = logging.getLogger(__name__)

DAPHNES = "channels_example:daphnes"
WORKERS = "channels_example:workers"
# A worker gone this long leaves the registry (a dead daphne leaves it when it has been swept).
FORGOTTEN_AFTER = 3600


def worker_name():
    return "%s:%d" % (socket.gethostname(), os.getpid())


def start_heartbeat(registry, name):
    """Beat once a second for ``name`` in ``registry`` (DAPHNES, WORKERS), from a daemon thread."""
    if isinstance(processes(), LocalProcesses):
        return

    def beat_forever():
        while True:
            try:
                processes().beat(registry, name)
            except Exception as error:  # Redis down or full: beat again in a second
                log.debug("%s: heartbeat not written: %s", name, error)
            time.sleep(1)

    threading.Thread(target=beat_forever, name="heartbeat", daemon=True).start()


def start_worker_heartbeat(sender=None, **kwargs):
    """On ``worker_process_ready``: sent by runworker, not by runserver's worker threads."""
    start_heartbeat(WORKERS, worker_name())


class LocalProcesses:
    """runserver: one daphne and its worker threads, in this process."""

    def beat(self, registry, name):
        pass

    def alive(self, registry):
        return ["runserver"]

    def dead_daphnes(self):
        return []

    def forget(self, name):
        pass


class RedisProcesses:
    def __init__(self, shards):
        self.shards = shards

    def beat(self, registry, name):
        self.shards.client(registry).zadd(registry, **{name: time.time()})

    def alive(self, registry):
        """The names that beat within DAPHNE_HEARTBEAT_TTL."""
        client, now = self.shards.client(registry), time.time()
        if registry == WORKERS:
            client.zremrangebyscore(WORKERS, "-inf", now - FORGOTTEN_AFTER)
        return [name.decode("utf-8") for name in
                client.zrangebyscore(registry, now - settings.DAPHNE_HEARTBEAT_TTL, "+inf")]

    def dead_daphnes(self):
        """The daphnes that beat once and stopped, until ``forget``."""
        stale = time.time() - settings.DAPHNE_HEARTBEAT_TTL
        return [name.decode("utf-8") for name in self.shards.client(DAPHNES).zrangebyscore(DAPHNES, "-inf", stale)]

    def forget(self, name):
        self.shards.client(DAPHNES).zrem(DAPHNES, name)


processes = PerDeployment(LocalProcesses, RedisProcesses)
