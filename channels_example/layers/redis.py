"""asgi_redis's layer, made explicit (channels_example.layers.explicit) and fast, surviving Redis restarts.

The message format in Redis is asgi_redis's, and so are sharding and Groups; what
differs is how messages are moved, which is where the 1.x stack spent its time:

* **daphne blocks instead of polling.** Offering the ``twisted`` extension makes
  daphne call ``receive_twisted``, which waits in BLPOP on a thread and hands a batch
  of messages to the reactor. Stock daphne polls, and sleeps 50 ms whenever its process
  channel is empty: that sleep was most of the latency, and the polling most of an idle
  daphne's CPU. (asgi_redis's own ``twisted`` mode, with txredisapi, opens a connection
  pool for every message and is slower still.)
* **daphne's frames are written by a thread**, up to 500 per round trip, so the
  reactor never waits on Redis for an incoming frame.
* **A Group message is written once per daphne process, not once per member**, and a
  Group's add and its read are one round trip each (groups.py).
* **One round trip to take a message**, not three: the message travels in its
  channel's list, not in a key of its own (so BLPOP returns it), and no statistics
  counter is written on every send. The lists hold ``<expires at>|<content>``, with
  asgi_redis's content and its Groups as they are: every process of a deployment must
  use this layer (a stock asgi_redis process would read keys where there are messages).
* **Workers take waiting messages in a fixed order** (``worker_priority``, a list of
  channel names): asgi_redis shuffles them.
* **A daphne reads its process channel on every shard** (anyshard.py), and a Group's
  message goes to it on the Group's shard: a shard that fails silences only the rooms
  whose Groups it held.
* **Statistics** for this message format: ``channel_statistics`` (the ASGI extension) reads
  a channel's backlog and its oldest message's age on every shard, for monitoring.
* **A compiled serializer** (ormsgpack) for asgi_redis's msgpack format.
* **Redis down** is logged once and waited out; runworker, which has no error handling
  of its own, keeps running.
* **Sends from inside Redis** (scripted.py): Lua functions that write channel messages
  as the layer does, so that an application can number, keep and fan out a message in
  one round trip.

The variants are subclasses, as in asgi_redis: ``RedisChannelLayer`` over asgi_redis's
layer for a list of Redis URLs (several = shards), and ``RedisSentinelChannelLayer``
(sentinel.py) over its Sentinel layer, for shards that survive losing their master.
"""
import collections
import logging
import queue
import threading
import time

import asgi_redis
import ormsgpack
import redis

from channels_example.layers.anyshard import AnyShard
from channels_example.layers.explicit import ExplicitDelivery
from channels_example.layers.gate import GATE
from channels_example.layers.groups import Groups
from channels_example.layers.lists import CHANSEND, POPBATCH, POPGET, expired, message_of
from channels_example.layers.outbox import Outbox
from channels_example.layers.scripted import LUA_SENDS, LuaSends

log = logging.getLogger(__name__)


class FastRedisLayer(Groups, AnyShard, LuaSends, Outbox, ExplicitDelivery):
    """The changes above, mixed into one of asgi_redis's layers (before it in the bases)."""

    extensions = ["groups", "flush", "statistics", "twisted", GATE, LUA_SENDS]
    TARGETS = "__asgi_targets__"
    # Messages daphne takes from its process channel in one round trip.
    BATCH = 100
    # The longest BLPOP this layer sends (asgi_redis's is 5 s): a socket timeout must exceed it.
    blpop_timeout = 1

    def __init__(self, worker_priority=(), **config):
        super().__init__(**config)
        self.worker_priority = {channel: rank for rank, channel in enumerate(worker_priority)}
        self._popget = self.connection(0).register_script(self.lua_popget)
        self._popbatch = self.connection(0).register_script(self.lua_popbatch)
        # One shard: a worker may block long on it. Several: block briefly on each in turn,
        # or a message on another shard would wait for the whole timeout.
        self.blpop_timeout = 1 if self.ring_size == 1 else 0.05
        self._ready = collections.deque()
        self._redis_down = False
        # Only in daphne, the one caller of receive_twisted: the thread writing its frames.
        self._outbox = None

    def _incr_statistics_counter(self, stat_name, channel, connection):
        """Not kept: one more write per message, and nothing here reads it."""

    def serialize(self, message):
        """asgi_redis's msgpack, byte for byte (use_bin_type), by a compiled packer: msgpack-python
        0.5.6 has no C extension on this Python, and its pure-Python one was most of a hop's cost."""
        value = ormsgpack.packb(message)
        return self.crypter.encrypt(value) if self.crypter else value

    def deserialize(self, message):
        if self.crypter:
            message = self.crypter.decrypt(message, self.expiry + 10)
        return ormsgpack.unpackb(message)

    def key(self, name):
        """The layer's own keys beside asgi_redis's (``asgi::group:...``), so flush() removes them too."""
        return "%s:%s" % (self.prefix, name)

    def shard(self, key):
        """The redis-py client of the server that holds ``key``."""
        return self.connection(self.consistent_hash(key))

    def timed_connection(self, index, timeout):
        """A client of shard ``index`` of its own, whose every call gives up after ``timeout`` seconds."""
        options = dict(self.connection(index).connection_pool.connection_kwargs, socket_timeout=timeout,
                       socket_connect_timeout=timeout)
        return redis.StrictRedis(**options)

    ### Sending ###

    def send(self, channel, message):
        if channel == "websocket.receive" and self._outbox is not None:
            if self._outbox.qsize() + self._held >= self.outbox_limit:
                log.error("refusing a frame from %s: %d frames wait for Redis already", message["reply_channel"],
                          self.outbox_limit)
                self.disconnect_refused(message)
                raise self.ChannelFull()
            self._outbox.put((channel, message))
            return
        if channel == "websocket.connect" and self._outbox is not None and self.connect_refused is not None:
            return self.queue_connect(message)
        # While Redis is down, or full (maxmemory, noeviction), daphne treats the frame as
        # refused: a new socket gets 503, an open one is closed with 1013 ("try again later").
        # A disconnect is kept and sent again once Redis answers (daphne would drop it).
        try:
            placed = self.frame_shard(message) if channel in ("websocket.connect", "websocket.disconnect") else None
            if placed is None:
                self._send_somewhere(channel, message)
            else:  # to the shard with the socket's state (its shard_key), as its frames
                if placed in self.__dict__.get("_shards_down", ()):  # daphne's reader there says so
                    raise redis.exceptions.ConnectionError("Redis shard %d is down" % placed)
                if channel == "websocket.disconnect":
                    self.closed(message["reply_channel"])
                self._send_on(placed, channel, message)
        except (redis.exceptions.ConnectionError, redis.exceptions.ResponseError) as error:
            if isinstance(error, redis.exceptions.ResponseError) and not str(error).startswith("OOM"):
                raise
            log.error("cannot send on %s: Redis is %s: %s", channel,
                      "down" if isinstance(error, redis.exceptions.ConnectionError) else "full", error)
            if channel == "websocket.receive":
                self.disconnect_refused(message, now=False)
            elif channel == "websocket.disconnect" and not self._flushing:
                self.pending_disconnects.append(message)
                return
            raise self.ChannelFull()

    def _send_somewhere(self, channel, message):
        """Send; a normal channel (no ``!`` or ``?``: any shard may hold it), or a process channel
        (read on every shard), is tried on each shard in turn while shards are down."""
        if "!" in channel and self.ring_size > 1:
            return self.send_process(channel, message)
        tries = 1 if ("!" in channel or "?" in channel) else self.ring_size
        for attempt in range(tries):
            try:
                return super().send(channel, message)
            except redis.exceptions.ConnectionError:
                if attempt == tries - 1:
                    raise

    def count_drop(self, channel, count=1):
        super().count_drop(channel, count)
        try:
            self.shard(channel).incrby(self.key("dropped"), count)
        except redis.exceptions.ConnectionError as error:  # counted here, not there
            log.warning("cannot count a drop on %s's shard: %s", channel, error)

    def dropped_total(self):
        """Messages dropped by every process using these Redis servers, since the counters began."""
        return sum(int(self.connection(index).get(self.key("dropped")) or 0) for index in range(self.ring_size))

    ### Statistics extension ###

    def channel_statistics(self, channel):
        """``messages_pending`` and ``messages_max_age`` (seconds) of a channel, over every shard (a
        process channel may be written on any: anyshard.py). No per-message counters are kept."""
        pending, oldest = 0, None
        for index in range(self.ring_size):
            length, first, now = self.connection(index).pipeline(transaction=False).llen(
                self.prefix + channel).lindex(self.prefix + channel, 0).time().execute()
            pending += length
            if first is not None and b"|" in first:
                queued = int(first.partition(b"|")[0]) - self.expiry * 1000  # each item holds its expiry
                oldest = queued if oldest is None else min(oldest, queued)
                now_ms = now[0] * 1000 + now[1] // 1000
        return {"messages_pending": pending, "messages_max_age": 0 if oldest is None else (now_ms - oldest) / 1000}

    ### Receiving, in a worker ###

    def receive(self, channels, block=False):
        """Take one message, from the channels in ``worker_priority`` order."""
        if self._ready:
            return self._ready.popleft()
        return self._surviving(lambda: self._receive(channels, block), (None, None))

    def _receive(self, channels, block):
        channels = sorted(channels, key=lambda channel: self.worker_priority.get(channel, len(self.worker_priority)))
        indexes = self._receive_list_names(channels)
        if indexes is None:
            return None, None
        if block and self.ring_size == 1:
            return self._wait_for_one(self.connection(0), indexes[0])
        # Every shard each time, not asgi_redis's one in turn: then a shard that is down
        # costs the others nothing.
        names = list(dict.fromkeys(name for list_names in indexes.values() for name in list_names))
        indexes = {index: names for index in range(self.ring_size)}
        live = []
        for index, list_names in indexes.items():
            try:
                # A message the gate holds yields nothing: take the next one.
                while True:
                    found = self._popget(keys=list_names, client=self.connection(index))
                    if not found:
                        break
                    unpacked = self._unpack(found[0], found[1])
                    if unpacked[0] is not None:
                        return unpacked
            except redis.exceptions.ConnectionError as error:
                # One shard down: the others still serve what is on them.
                self._shard_down(index, error)
                continue
            self._shard_up(index)
            live.append((index, list_names))
        if not live:
            raise redis.exceptions.ConnectionError("no shard can be reached")
        if block:
            # Block on each live shard in turn, so that none waits behind another.
            self._blocking_turn = (getattr(self, "_blocking_turn", -1) + 1) % len(live)
            index, list_names = live[self._blocking_turn]
            connection = self.connection(index)
            popped = connection.blpop(list_names, timeout=self.blpop_timeout)
            if popped and message_of(popped[1]) is not None:
                return self._unpack(popped[0], message_of(popped[1]))
        return None, None

    def _wait_for_one(self, connection, list_names):
        """One message, in one round trip: BLPOP takes it from the first of the lists (in priority
        order) that has one, waiting up to blpop_timeout, and TIME, answered right after, says
        whether it expired."""
        give_up = time.monotonic() + self.blpop_timeout
        while time.monotonic() < give_up:
            popped, now = connection.pipeline(transaction=False).blpop(
                list_names, timeout=self.blpop_timeout).time().execute()
            if not popped:
                break
            if not expired(popped[1], now[0] * 1000 + now[1] // 1000):
                unpacked = self._unpack(popped[0], message_of(popped[1]))
                if unpacked[0] is not None:
                    return unpacked
        return None, None

    def receive_waiting(self, channel, limit):
        """Up to ``limit`` messages already waiting on a channel, without waiting: one round trip per shard."""
        found = []
        for index in range(self.ring_size):
            if len(found) < limit:
                try:
                    found += self._popbatch(keys=[self.prefix + channel], args=[limit - len(found)],
                                            client=self.connection(index))
                except redis.exceptions.ConnectionError as error:  # the others still serve theirs
                    self._shard_down(index, error)
        return [(channel, self.deserialize(content)) for content in found]

    def _shard_down(self, index, error):
        down = self.__dict__.setdefault("_shards_down", set())
        if index not in down:
            down.add(index)
            log.error("cannot reach Redis shard %d, going on with the others: %s", index, error)

    def _shard_up(self, index):
        down = self.__dict__.get("_shards_down")
        if down and index in down:
            down.discard(index)
            log.warning("Redis shard %d is reachable again", index)

    def _unpack(self, list_name, content):
        self._ready.extend(self._expand(list_name[len(self.prefix):].decode("utf8"), self.deserialize(content)))
        self._ready.extend(self.gate.overdue())
        return self._ready.popleft() if self._ready else (None, None)

    def _expand(self, channel, message):
        """One (channel, message) per target (a Group message names several sockets), through the gate."""
        channel = message.pop("__asgi_channel__", channel)
        targets = message.pop(self.TARGETS, None)
        return self.gate.admit_all([channel] if targets is None else targets, message)

    def _surviving(self, read, default):
        """``read()``, or ``default`` while Redis cannot be reached (logged once an outage)."""
        try:
            result = read()
        except redis.exceptions.ConnectionError as error:
            if not self._redis_down:
                log.error("cannot reach Redis, retrying: %s", error)
            self._redis_down = True
            return default
        if self._redis_down:
            log.warning("Redis is reachable again")
            self._redis_down = False
        return result

    ### Receiving, in daphne ("twisted" mode: it waits on this Deferred and dispatches what it gets) ###

    def receive_twisted(self, channels):
        from twisted.internet import defer, threads

        if self._outbox is None:
            self._outbox = queue.Queue()
            threading.Thread(target=self._write_outbox, name="layer-outbox", daemon=True).start()
        if self._ready:
            return defer.succeed(self._ready.popleft())
        return threads.deferToThread(self.receive_batch, channels).addCallback(self._first_of)

    def _first_of(self, batch):
        if self.pending_disconnects and not self._redis_down:
            self.flush_disconnects()
        if not batch:
            return None, None
        self._ready.extend(batch[1:])
        return batch[0]

    def receive_batch(self, channels):
        """Up to BATCH (channel, message) pairs from a daphne's process channel, waiting up to a second if there are none.

        """
        process = channels[0]
        if self.ring_size > 1:
            raw = self.read_every_shard(process)
        else:
            raw = self._surviving(lambda: self.pop_batch(self.connection(0), [self.prefix + process]), None)
        if raw is None:
            time.sleep(0.1)  # on the reader's thread: do not spin while Redis is down
            return []
        batch = []
        for content in raw:
            if content:
                batch.extend(self._expand(process, self.deserialize(content)))
        return batch + self.gate.overdue()

    def pop_batch(self, connection, list_names):
        """Up to BATCH messages' contents from the first of these lists, waiting up to a second, in one
        round trip: BLPOP waits for a message, and the batch behind it comes in the answer to the script
        sent with it."""
        pipe = connection.pipeline(transaction=False)
        pipe.blpop(list_names, timeout=1)
        pipe.evalsha(self._popbatch.sha, 1, list_names[0], self.BATCH - 1)
        popped, rest = pipe.execute(raise_on_error=False)
        if isinstance(popped, Exception):
            raise popped
        if isinstance(rest, redis.exceptions.NoScriptError):  # a new Redis, or one that restarted
            connection.script_load(self.lua_popbatch)
            rest = self._popbatch(keys=list_names[:1], args=[self.BATCH - 1], client=connection)
        elif isinstance(rest, Exception):
            raise rest
        # An item with no "|" is an asgi_redis key (message_of): skipped by the caller.
        return ([message_of(popped[1])] if popped else []) + rest

    ### Lua: the message format in Redis (lists.py) ###

    lua_chansend, lua_popget, lua_popbatch = CHANSEND, POPGET, POPBATCH


class RedisChannelLayer(FastRedisLayer, asgi_redis.RedisChannelLayer):
    """For ``hosts``: one Redis URL, or several to shard the layer over several servers."""
