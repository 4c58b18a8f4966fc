"""Process channels on every shard: a daphne keeps receiving while one of several Redis servers is down.

asgi_redis puts a process channel (``daphne.response.X!``, which carries every message
to every socket of that daphne) on one shard, the one its name hashes to: when that
server fails, every socket of the daphne goes silent, whatever shard its Group is on.
Here, with several shards, a daphne reads its process channel on every one of them,
each on a thread of its own, and a message for it may be written on any:

* a Group's message goes to the Group's own shard (``send_group``), so that a room
  whose Group lives on a server that is up never depends on one that is down;
* any other message to a process channel goes where its name hashes, or, while that
  server is down, to the next one that is up.

Messages to one socket from two shards can arrive in either order; the join gate
(gate.py) orders each room's numbered stream, and the rest (an accept, a welcome, a
history) are sent to one channel by one worker in turn. With one shard nothing changes.
"""
import logging
import queue
import threading
import time

import redis

log = logging.getLogger(__name__)


class AnyShard:
    """Mixed into the Redis layers (channels_example.layers.redis) before asgi_redis's."""

    _arrived = None

    def send_process(self, channel, message, first=None):
        """Send to a process channel (``...!`` or ``...!local``) on shard ``first`` (default: where its name
        hashes), or on the next shard that is up; the shards found down lately are tried last."""
        if first is None:
            first = self.consistent_hash(self.non_local_name(channel))
        order = [(first + step) % self.ring_size for step in range(self.ring_size)]
        down = self.__dict__.get("_shards_down") or ()
        order = [index for index in order if index not in down] + [index for index in order if index in down]
        for attempt, index in enumerate(order):
            try:
                return self._send_on(index, channel, message)
            except redis.exceptions.ConnectionError as error:
                self._shard_down(index, error)
                if attempt == len(order) - 1:
                    raise

    def _send_on(self, index, channel, message):
        """asgi_redis's send, on shard ``index``."""
        name = channel
        if "!" in channel:
            message = dict(message, __asgi_channel__=channel)
            name = self.non_local_name(channel)
        try:
            self.chansend(keys=[self.prefix + "-", self.prefix + name],
                          args=[self.serialize(message), self.expiry, self.get_capacity(name)],
                          client=self.connection(index))
        except redis.exceptions.ResponseError as error:
            if error.args and error.args[0] == "full":
                raise self.ChannelFull()
            raise

    def _receive_list_names(self, channels):
        """asgi_redis's, with each process channel read on every shard."""
        indexes = super()._receive_list_names(channels)
        if indexes is None or self.ring_size == 1:
            return indexes
        for channel in channels:
            if "!" in channel:
                for index in range(self.ring_size):
                    names = indexes.setdefault(index, [])
                    if self.prefix + channel not in names:
                        names.append(self.prefix + channel)
        return indexes

    def read_every_shard(self, process):
        """In daphne, with several shards: what arrived on the process channel, on any shard, within a second."""
        if self._arrived is None:
            self._arrived = queue.Queue()
            for index in range(self.ring_size):
                threading.Thread(target=self._read_shard, args=(index, [self.prefix + process]),
                                 name="layer-reader-%d" % index, daemon=True).start()
        try:
            raw = self._arrived.get(timeout=1)
        except queue.Empty:
            return []
        while not self._arrived.empty():
            raw += self._arrived.get_nowait()
        return raw

    def _read_shard(self, index, list_names):
        while True:
            try:
                batch = self.pop_batch(self.connection(index), list_names)
            except redis.exceptions.ConnectionError as error:
                self._shard_down(index, error)
                time.sleep(0.1)  # do not spin while it is down
                continue
            self._shard_up(index)
            if batch:
                self._arrived.put(batch)
