"""Heartbeats of daphne processes and workers, in Redis, and the layer's figures for monitoring.

Mixed into the Redis layers (channels_example.layers.redis), which give it ``key``,
``shard`` and ``heartbeat_ttl``:

* each daphne marks its process channel alive once a second, from its reader thread, for
  ``heartbeat_ttl`` seconds; ``dead_processes`` names those whose heartbeat stopped, until
  ``forget_process``, so an application can clean up after a daphne that died without
  sending its sockets' disconnects;
* each worker does the same from its receive loop, under its host, pid and layer id;
* ``alive()`` names the processes (or workers) alive now, and ``queue_lengths()`` reads
  every channel's backlog on every shard.
"""
import logging
import time

import redis

log = logging.getLogger(__name__)


class Heartbeats:
    def _worker_alive(self):
        """A worker's heartbeat, once a second from its receive loop (which runs at least that often)."""
        now = time.monotonic()
        if now - self._worker_heartbeat_at >= 1:
            self._worker_heartbeat_at = now
            self._beat(self.worker_name, registry="workers")

    def _keep_alive(self, process):
        now = time.monotonic()
        if now - self._heartbeat_at >= 1:
            self._heartbeat_at = now
            self._beat(process)

    def _beat(self, process, registry="processes"):
        self._unless_full("the heartbeat of " + process, lambda: self.heartbeat(process, registry))

    @staticmethod
    def _unless_full(what, write):
        """``write()``, except that a full Redis (maxmemory, noeviction) costs this write only: the
        process goes on taking messages, which is what frees the memory. Left to raise, the
        refused write ended the worker's receive loop, and runworker with it."""
        try:
            write()
        except redis.exceptions.ResponseError as error:
            if "OOM command not allowed" not in str(error):  # a pipeline's error names its command first
                raise
            log.error("cannot write %s: Redis is full: %s", what, error)

    def heartbeat(self, process, registry="processes"):
        """Mark a daphne process (or a worker) alive for heartbeat_ttl seconds (each does it every second)."""
        beat, names = self.key("heartbeat:" + process), self.key(registry)
        pipe = self.shard(beat).pipeline(transaction=False).set(beat, 1, px=int(self.heartbeat_ttl * 1000))
        if self.consistent_hash(names) == self.consistent_hash(beat):
            pipe.zadd(names, **{process: int(time.time())}).execute()  # one round trip
        else:
            pipe.execute()
            self.shard(names).zadd(names, **{process: int(time.time())})

    def dead_processes(self):
        """The daphne processes that kept a heartbeat and stopped, until ``forget_process``."""
        registry = self.shard(self.key("processes"))
        processes = [process.decode("utf8") for process in registry.zrange(self.key("processes"), 0, -1)]
        return [process for process in processes
                if not self.shard(self.key("heartbeat:" + process)).exists(self.key("heartbeat:" + process))]

    def forget_process(self, process):
        self.shard(self.key("processes")).zrem(self.key("processes"), process)

    def alive(self, registry="processes"):
        """The daphne processes (or, ``registry="workers"``, the workers) whose heartbeat is live."""
        names = [name.decode("utf8") for name in self.shard(self.key(registry)).zrange(self.key(registry), 0, -1)]
        alive = [name for name in names if self.shard(self.key("heartbeat:" + name)).exists(self.key("heartbeat:" + name))]
        # A worker that stopped long ago leaves the registry (daphnes leave it when swept).
        if registry == "workers":
            stale = int(time.time()) - max(self.group_expiry, 3600)
            self.shard(self.key(registry)).zremrangebyscore(self.key(registry), 0, stale)
        return alive

    def queue_lengths(self, channels):
        """``{channel: messages waiting}`` for these channels, summed over every shard."""
        lengths = dict.fromkeys(channels, 0)
        for index in range(self.ring_size):
            pipe = self.connection(index).pipeline(transaction=False)
            for channel in channels:
                pipe.llen(self.prefix + channel)
            for channel, length in zip(channels, pipe.execute()):
                lengths[channel] += length
        return lengths
