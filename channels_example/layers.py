"""The channel layers this project runs on: the stock ones, with a few things made explicit.

``RedisChannelLayer`` is asgi_redis's and ``InMemoryChannelLayer`` is asgiref's (the
seed's), each changed in two ways (and the Redis one made fast, see its docstring):

1. **No silent drops.** A Group send skips any member whose channel is full (every
   socket of one daphne shares that daphne's process channel). The stock layers
   skip it silently; these log a warning naming the group and channel and count
   it (``dropped`` here, and on Redis the key DROPPED_KEY on each shard).
2. **Per-socket backpressure.** ``websocket.receive`` is one queue shared by every
   socket, so a single client flooding it would fill it, and daphne would then close
   whichever socket sent next with 1013, flooders and bystanders alike. Here daphne's
   send of a socket's frame raises ChannelFull when that socket already has
   ``socket_backlog`` frames sent but not yet handled, so daphne closes *that* socket
   with 1013 ("try again later") while the queue still has room for everyone else.
   The count comes from the socket's ``order`` and the ordering sequencer's progress
   (channels_example.ordering), read only when a socket is near its limit.
"""
import collections
import logging
import time

import redis
from asgi_redis import RedisChannelLayer as StockRedisChannelLayer
from asgiref.inmemory import ChannelLayer as StockInMemoryChannelLayer

log = logging.getLogger(__name__)

DROPPED_KEY = "channels_example:dropped"


class ExplicitLayerMixin:
    """Drops logged and counted; a socket past ``socket_backlog`` refused (see above)."""

    def __init__(self, socket_backlog=1000, **config):
        super().__init__(**config)
        self.socket_backlog = socket_backlog
        self.dropped = 0
        self._handled = {}

    def send(self, channel, message):
        if channel == "websocket.receive":
            self._check_backlog(message["reply_channel"], message["order"])
        elif channel == "websocket.disconnect":
            self._handled.pop(message["reply_channel"], None)
        super().send(channel, message)

    def _check_backlog(self, socket, order):
        # order - next = frames of this socket sent to workers and not yet handled.
        if order - self._handled.get(socket, 1) < self.socket_backlog:
            return
        from channels_example.ordering import sequencer

        self._handled[socket] = sequencer().next_order(socket)
        if order - self._handled[socket] >= self.socket_backlog:
            log.warning("closing %s: %d frames waiting to be handled (socket_backlog)", socket, self.socket_backlog)
            raise self.ChannelFull()

    def send_group(self, group, message):
        for channel in self.group_channels(group):
            try:
                self.send(channel, message)
            except self.ChannelFull:
                self.dropped += 1
                self._count_drop(channel)
                log.warning("dropped a message to group %s for %s: its channel is full", group, channel)


class RedisChannelLayer(ExplicitLayerMixin, StockRedisChannelLayer):
    """asgi_redis's layer, with drops and floods made explicit (above), surviving Redis
    restarts, and with the plumbing costs that made the 1.x stack slow taken out.
    The message format in Redis is asgi_redis's; only its own processes read it.

    * **daphne blocks instead of polling.** Offering the ``twisted`` extension makes
      daphne call ``receive_twisted``, which waits in BLPOP on a thread and hands a
      batch of messages to the reactor. Stock daphne polls, and sleeps 50 ms whenever
      its process channel is empty: that sleep was most of the latency, and the
      polling most of an idle daphne's CPU. (asgi_redis's own ``twisted`` mode, with
      txredisapi, opens a connection pool for every message and is slower still.)
    * **A Group message is written once per daphne process, not once per member.**
      The members' reply channels are grouped by the daphne process they belong to
      (the part up to ``!``), and each daphne gets one message naming its targets;
      its ``receive`` hands daphne one copy per target. A full process channel drops
      the message for those members, logged and counted as above.
    * **One round trip to take a message**, not three (pop, get, delete in one script),
      and no statistics counter written on every send.

    Select asgi_redis's own layer with REDIS_LAYER=stock (settings.py) to compare.
    """

    extensions = ["groups", "flush", "twisted"]
    TARGETS = "__asgi_targets__"
    # Messages daphne takes from its process channel in one round trip.
    BATCH = 100

    _redis_down = False

    def __init__(self, **config):
        super().__init__(**config)
        self._popget = self.connection(0).register_script(_POPGET)
        self._popbatch = self.connection(0).register_script(_POPBATCH)
        # One shard: a worker may block long on it. Several: block briefly on each in turn,
        # or a message on another shard would wait for the whole timeout.
        self.blpop_timeout = 1 if len(self.hosts) == 1 else 0.05
        self._ready = collections.deque()

    def _incr_statistics_counter(self, stat_name, channel, connection):
        """Not kept: one more write per message, and nothing here reads it."""

    def send(self, channel, message):
        # While Redis is down daphne treats the frame as refused: a new socket gets 503,
        # an open one is closed with 1013 ("try again later") and can reconnect.
        try:
            super().send(channel, message)
        except redis.exceptions.ConnectionError as error:
            log.error("cannot reach Redis to send on %s: %s", channel, error)
            raise self.ChannelFull()

    def group_channels(self, group):
        """The group's members, dropping those older than group_expiry, in one round trip."""
        key = self._group_key(group)
        pipe = self.connection(self.consistent_hash(group)).pipeline()
        pipe.zremrangebyscore(key, 0, int(time.time()) - self.group_expiry).zrange(key, 0, -1)
        return [member.decode("utf8") for member in pipe.execute()[1]]

    def send_group(self, group, message):
        by_process = collections.defaultdict(list)
        for channel in self.group_channels(group):
            by_process[self.non_local_name(channel)].append(channel)
        for process, targets in by_process.items():
            try:
                if process.endswith("!"):
                    StockRedisChannelLayer.send(self, process, dict(message, **{self.TARGETS: targets}))
                else:
                    StockRedisChannelLayer.send(self, process, message)
            except (self.ChannelFull, redis.exceptions.ConnectionError):
                self.dropped += len(targets)
                self._count_drop(process, len(targets))
                log.warning("dropped a message to group %s for %s: the channel of their daphne is full",
                            group, ", ".join(targets[:5]) + (" and %d more" % (len(targets) - 5) if len(targets) > 5 else ""))

    def receive(self, channels, block=False):
        """Take one message; survives Redis being down (runworker has no error handling)."""
        if self._ready:
            return self._ready.popleft()
        try:
            result = self._receive(channels, block)
        except redis.exceptions.ConnectionError as error:
            if not self._redis_down:
                log.error("cannot reach Redis, retrying: %s", error)
            self._redis_down = True
            return None, None
        if self._redis_down:
            log.warning("Redis is reachable again")
            self._redis_down = False
        return result

    def _receive(self, channels, block):
        indexes = self._receive_list_names(channels)
        if indexes is None:
            return None, None
        for index, list_names in indexes.items():
            found = self._popget(keys=list_names, client=self.connection(index))
            if found:
                return self._unpack(found[0], found[1])
        if block:
            index, list_names = next(iter(indexes.items()))
            connection = self.connection(index)
            popped = connection.blpop(list_names, timeout=self.blpop_timeout)
            if popped:
                pipe = connection.pipeline()
                content = pipe.get(popped[1]).delete(popped[1]).execute()[0]
                if content is not None:
                    return self._unpack(popped[0], content)
        return None, None

    def _unpack(self, list_name, content):
        messages = self._expand(list_name[len(self.prefix):].decode("utf8"), self.deserialize(content))
        first = messages.popleft()
        self._ready.extend(messages)
        return first

    def _expand(self, channel, message):
        """One (channel, message) per target: a Group message names several sockets."""
        channel = message.pop("__asgi_channel__", channel)
        targets = message.pop(self.TARGETS, None)
        if targets is None:
            return collections.deque([(channel, message)])
        return collections.deque((target, message) for target in targets)

    # daphne's "twisted" mode: it waits on this Deferred and dispatches what it gets.

    def receive_twisted(self, channels):
        from twisted.internet import defer, threads

        if self._ready:
            return defer.succeed(self._ready.popleft())
        return threads.deferToThread(self._receive_batch, channels).addCallback(self._first_of)

    def _first_of(self, batch):
        if not batch:
            return None, None
        self._ready.extend(batch[1:])
        return batch[0]

    def _receive_batch(self, channels):
        """On a thread: up to BATCH messages from daphne's process channel, waiting if there are none."""
        (index, list_names), = self._receive_list_names(channels).items()
        connection = self.connection(index)
        try:
            raw = self._popbatch(keys=list_names[:1], args=[self.BATCH], client=connection)
            if not raw:
                popped = connection.blpop(list_names, timeout=1)
                if popped:
                    raw = [connection.pipeline().get(popped[1]).delete(popped[1]).execute()[0]]
                    raw += self._popbatch(keys=list_names[:1], args=[self.BATCH - 1], client=connection)
        except redis.exceptions.ConnectionError as error:
            log.error("cannot reach Redis, retrying: %s", error)
            return []
        batch = []
        for content in raw:
            if content:
                batch.extend(self._expand(channels[0], self.deserialize(content)))
        return batch

    def _count_drop(self, channel, count=1):
        self.connection(self.consistent_hash(channel)).incrby(DROPPED_KEY, count)


# KEYS: channel lists, in order. Pops the first message whose content has not expired,
# deletes its content key and returns {list, content}; nil if all are empty.
_POPGET = """
for _, list in ipairs(KEYS) do
  while true do
    local key = redis.call('LPOP', list)
    if not key then break end
    local content = redis.call('GET', key)
    if content then
      redis.call('DEL', key)
      return {list, content}
    end
  end
end
return nil
"""

# KEYS[1]: one channel list; ARGV[1]: how many. Pops up to that many messages and
# returns their contents (expired ones are skipped), deleting the content keys.
_POPBATCH = """
local keys = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #keys == 0 then return {} end
redis.call('LTRIM', KEYS[1], #keys, -1)
local contents = redis.call('MGET', unpack(keys))
redis.call('DEL', unpack(keys))
local found = {}
for i = 1, #keys do
  if contents[i] then table.insert(found, contents[i]) end
end
return found
"""


class InMemoryChannelLayer(ExplicitLayerMixin, StockInMemoryChannelLayer):
    def _count_drop(self, channel):
        """The in-memory count is ``dropped``; there is no other process to tell."""
