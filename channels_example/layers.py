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
import queue
import threading
import time
import uuid

import redis
from asgi_redis import RedisChannelLayer as StockRedisChannelLayer
from asgiref.inmemory import ChannelLayer as StockInMemoryChannelLayer

from channels_example import protocol

log = logging.getLogger(__name__)

DROPPED_KEY = "channels_example:dropped"

# The layers here carry these private keys on channel messages to sockets and strip them
# before daphne sees them (daphne refuses a reply with keys it does not know). A live
# message of a stream carries its number in the room; the snapshot frame sent on joining
# carries the number it is complete up to.
GATE = "channels_example.gate"
SEQ_KEY, HISTORY_UPTO_KEY = "__seq__", "__history_upto__"
PRESENCE_SEQ_KEY, PRESENCE_UPTO_KEY = "__presence_seq__", "__presence_upto__"
STREAMS = {SEQ_KEY: HISTORY_UPTO_KEY, PRESENCE_SEQ_KEY: PRESENCE_UPTO_KEY}


def gated(frame, key, number):
    """``frame`` with a private gate key added, if the layer in use has the gate.

    asgi_redis's stock layer (REDIS_LAYER=stock) has none and would hand the key to
    daphne, which drops the whole message; there the frame goes as it is, and the
    joining client loses the no-gap, no-duplicate promise, not the message.
    """
    from channels import DEFAULT_CHANNEL_LAYER, channel_layers

    if GATE in channel_layers[DEFAULT_CHANNEL_LAYER].extensions:
        frame[key] = number
    return frame


class JoinGate:
    """For each joining socket: welcome and history first, then every later message once, in the room's order.

    A joining socket is added to its room's Group *before* the room's members and
    history are read, so a message or presence event published meanwhile can reach it
    live before its welcome and history frames, and again inside them. And two workers
    publishing to one room at once may deliver its messages 7 and 8 in either order.
    Every live chat message carries its number in the room (SEQ_KEY), every presence
    event its own (PRESENCE_SEQ_KEY); the welcome frame carries the presence number its
    member list is complete up to (PRESENCE_UPTO_KEY), the history frame the message
    number (HISTORY_UPTO_KEY). For each socket the gate:

    * holds live messages until both snapshot frames have passed;
    * from then on passes each stream's messages in their numbered order, starting just
      after its snapshot, and drops any numbered at or below what it has passed (the
      snapshots already hold them).

    A number that never comes (a message lost with a killed worker, or dropped for a
    full channel) holds the messages after it for ``gap_seconds`` at most; then they
    pass and the gap is skipped. A socket whose snapshots do not come within
    ``max_seconds`` (or ``max_held`` messages) gets what was held and a warning is
    logged. Messages without these keys (accept, errors, HTTP) pass untouched. A socket
    is forgotten when daphne sends its websocket.disconnect through this layer; live
    messages still coming to it for ``closed_seconds`` after that are dropped (daphne
    would discard them).
    """

    def __init__(self, max_held=1000, max_seconds=5.0, gap_seconds=1.0, closed_seconds=60):
        self.max_held, self.max_seconds = max_held, max_seconds
        self.gap_seconds, self.closed_seconds = gap_seconds, closed_seconds
        self._lock = threading.Lock()
        self._joining = {}  # socket -> {"since": monotonic time, "upto": {live key: number}, "held": [...]}
        self._open = {}  # socket -> {live key: {"next": number, "parked": {number: message}, "since": time}}
        self._gaps = set()  # (socket, live key) whose stream has messages parked behind a gap
        self._closed = {}  # socket -> monotonic time of its disconnect
        self._purged = time.monotonic()

    def admit(self, socket, message):
        """The (channel, message) pairs to hand daphne now for ``message`` to ``socket``."""
        if not any(key in message for key in _PRIVATE_KEYS):
            return [(socket, message)]
        message = dict(message)
        private = {key: message.pop(key) for key in _PRIVATE_KEYS if key in message}
        with self._lock:
            live_key = next((key for key in STREAMS if key in private), None)
            if live_key is not None:
                return [(socket, out) for out in self._live(socket, live_key, private[live_key], message)]
            state = self._joining_state(socket)
            state["upto"].update((live, private[upto]) for live, upto in STREAMS.items() if upto in private)
            if len(state["upto"]) < len(STREAMS):
                return [(socket, message)]
            return [(socket, message)] + [(socket, out) for out in self._let_in(socket, state["upto"])]

    def _joining_state(self, socket):
        if socket not in self._joining:
            self._joining[socket] = {"since": time.monotonic(), "upto": {}, "held": []}
        return self._joining[socket]

    def _live(self, socket, live_key, number, message):
        if socket in self._open:
            return self._in_order(socket, live_key, number, message)
        if socket in self._closed:
            return []
        held = self._joining_state(socket)["held"]
        held.append((live_key, number, message))
        if len(held) > self.max_held:
            return self._let_through(socket, "%d messages" % self.max_held)
        return []

    def _in_order(self, socket, live_key, number, message):
        stream = self._open[socket][live_key]
        if stream["next"] is None:
            stream["next"] = number
        if number < stream["next"]:
            return []
        stream["parked"][number] = message
        out = self._due(stream)
        if stream["parked"]:
            stream["since"] = stream["since"] or time.monotonic()
            self._gaps.add((socket, live_key))
            if len(stream["parked"]) > self.max_held:
                out += self._skip_gap(socket, live_key)
        return out

    def _due(self, stream):
        out = []
        while stream["next"] in stream["parked"]:
            out.append(stream["parked"].pop(stream["next"]))
            stream["next"] += 1
        if not stream["parked"]:
            stream["since"] = None
        return out

    def _skip_gap(self, socket, live_key):
        stream = self._open[socket][live_key]
        log.warning("%s: messages %d to %d of its room never came; skipped", socket, stream["next"],
                    min(stream["parked"]) - 1)
        stream["next"] = min(stream["parked"])
        stream["since"] = None
        out = self._due(stream)
        if stream["parked"]:
            stream["since"] = time.monotonic()
        else:
            self._gaps.discard((socket, live_key))
        return out

    def _let_in(self, socket, upto):
        held = self._joining.pop(socket)["held"]
        # A stream whose start is unknown (None: no snapshot came) starts at its first message.
        self._open[socket] = {key: {"next": None if upto[key] is None else upto[key] + 1, "parked": {}, "since": None}
                              for key in STREAMS}
        out = []
        for live_key, number, message in held:
            out += self._in_order(socket, live_key, number, message)
        return out

    def _let_through(self, socket, why):
        log.warning("no welcome and history came for %s after %s: passing its messages on unsorted", socket, why)
        state = self._joining[socket]
        upto = {key: min((number for live, number, _ in state["held"] if live == key), default=None)
                for key in STREAMS}
        upto = {key: number - 1 if number is not None else None for key, number in upto.items()}
        upto.update(state["upto"])
        return self._let_in(socket, upto)

    def overdue(self):
        """Pairs released because a socket waited too long for its snapshots or behind a gap."""
        now, out = time.monotonic(), []
        with self._lock:
            for socket, state in list(self._joining.items()):
                if now - state["since"] > self.max_seconds:
                    out.extend((socket, message) for message in self._let_through(socket, "%.0f s" % self.max_seconds))
            for socket, live_key in list(self._gaps):
                stream = self._open.get(socket, {}).get(live_key)
                if stream is None or not stream["parked"]:
                    self._gaps.discard((socket, live_key))
                elif now - stream["since"] > self.gap_seconds:
                    out.extend((socket, message) for message in self._skip_gap(socket, live_key))
            if now - self._purged > 1:
                self._purged = now
                for socket, closed in list(self._closed.items()):
                    if now - closed > self.closed_seconds:
                        del self._closed[socket]
        return out

    def forget(self, socket):
        with self._lock:
            self._open.pop(socket, None)
            self._joining.pop(socket, None)
            self._closed[socket] = time.monotonic()


_PRIVATE_KEYS = tuple(STREAMS) + tuple(STREAMS.values())


class ExplicitLayerMixin:
    """Drops logged and counted; a socket past ``socket_backlog`` refused; joins gated (see above)."""

    def __init__(self, socket_backlog=1000, **config):
        super().__init__(**config)
        self.socket_backlog = socket_backlog
        self.pending_disconnects = collections.deque()
        self.dropped = 0
        self._handled = {}
        self.gate = JoinGate()

    def send(self, channel, message):
        if channel == "websocket.receive":
            self._check_backlog(message["reply_channel"], message["order"])
            message = self.admit_frame(message)
        elif channel == "websocket.disconnect":
            self._handled.pop(message["reply_channel"], None)
            self.gate.forget(message["reply_channel"])
        super().send(channel, message)

    @staticmethod
    def admit_frame(message):
        """The frame as it goes to a worker: an over-long one as its length only, so that
        its sender gets "message_too_long" and Redis never holds the body."""
        body = message.get("text") if message.get("text") is not None else message.get("bytes")
        if body is None or len(body) <= protocol.MAX_FRAME_LENGTH:
            return message
        short = {key: value for key, value in message.items() if key not in ("text", "bytes")}
        short[protocol.OVERSIZED] = len(body)
        return short

    def _check_backlog(self, socket, order):
        # order - next = frames of this socket sent to workers and not yet handled.
        if order - self._handled.get(socket, 1) < self.socket_backlog:
            return
        from channels_example.ordering import sequencer

        self._handled[socket] = sequencer().next_order(socket)
        if order - self._handled[socket] >= self.socket_backlog:
            log.warning("closing %s: %d frames waiting to be handled (socket_backlog)", socket, self.socket_backlog)
            self.disconnect_refused(socket, order)
            raise self.ChannelFull()

    def disconnect_refused(self, socket, order):
        """Send the websocket.disconnect daphne will not send for a socket whose frame was refused.

        Daphne closes such a socket with 1013 but marks it muted, and a muted socket's
        close sends no disconnect: without this it would stay in its Group and in its
        room's presence for a day. Its ``order`` is the refused frame's, the last the
        socket will have. Kept and sent again later if Redis cannot take it now.
        """
        self.pending_disconnects.append({"reply_channel": socket, "path": "", "code": 1013, "order": order})
        self.flush_disconnects()

    def flush_disconnects(self):
        while self.pending_disconnects:
            try:
                self.send("websocket.disconnect", self.pending_disconnects[0])
            except self.ChannelFull:
                return
            self.pending_disconnects.popleft()

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
    * **Workers take waiting messages in a fixed order** (WORKER_PRIORITY): joins before
      chat, so a busy room does not keep newcomers waiting, and chat before storing it,
      which is off the delivery path. (asgi_redis shuffles; this layer used the order
      of a set, which differs from process to process.)

    In daphne it also keeps the process's heartbeat for presence: at most once a second
    it marks the process alive in Redis, and every PRESENCE_SWEEP_INTERVAL it asks the
    workers to sweep out the sockets of daphnes whose heartbeat stopped
    (channels_example.presence).

    Select asgi_redis's own layer with REDIS_LAYER=stock (settings.py) to compare.
    """

    extensions = ["groups", "flush", "twisted", GATE]
    WORKER_PRIORITY = ["websocket.connect", "http.request", "websocket.receive", "websocket.disconnect",
                       "presence.sweep", "chat.history"]
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
        self._heartbeat_at = self._sweep_at = 0.0
        # In daphne only (it is the one caller of receive_twisted): frames for
        # websocket.receive are written by a thread, many per round trip, so the
        # reactor never waits on Redis for an incoming frame.
        self._outbox = None

    def _incr_statistics_counter(self, stat_name, channel, connection):
        """Not kept: one more write per message, and nothing here reads it."""

    def send(self, channel, message):
        if channel == "websocket.receive" and self._outbox is not None:
            self._check_backlog(message["reply_channel"], message["order"])
            self._outbox.put((channel, self.admit_frame(message)))
            return
        # While Redis is down daphne treats the frame as refused: a new socket gets 503,
        # an open one is closed with 1013 ("try again later") and can reconnect.
        try:
            super().send(channel, message)
        except redis.exceptions.ConnectionError as error:
            log.error("cannot reach Redis to send on %s: %s", channel, error)
            if channel == "websocket.receive":
                self.pending_disconnects.append(
                    {"reply_channel": message["reply_channel"], "path": "", "code": 1013, "order": message["order"]})
            raise self.ChannelFull()

    def _write_outbox(self):
        """On a thread in daphne: write queued frames, up to 500 per round trip per shard."""
        while True:
            batch = [self._outbox.get()]
            while len(batch) < 500 and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            by_shard = collections.defaultdict(list)
            for channel, message in batch:
                by_shard[next(self._send_index_generator)].append((channel, message))
            for index, frames in by_shard.items():
                try:
                    self._write(index, frames)
                except Exception:  # the thread must outlive any one batch
                    log.exception("lost %d frames for websocket.receive", len(frames))

    def _write(self, index, frames):
        pipe = self.connection(index).pipeline(transaction=False)
        for channel, message in frames:
            self.chansend(
                keys=[self.prefix + uuid.uuid4().hex, self.prefix + channel],
                args=[self.serialize(message), self.expiry, self.get_capacity(channel)],
                client=pipe,
            )
        try:
            results = pipe.execute(raise_on_error=False)
        except redis.exceptions.ConnectionError as error:
            results = [error] * len(frames)
            time.sleep(0.1)  # Redis is down: do not spin
        for (channel, message), result in zip(frames, results):
            if isinstance(result, Exception):
                self.dropped += 1
                self._count_drop(channel)
                log.warning("lost a frame from %s on %s: %s", message["reply_channel"], channel, result)

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
        rank = {channel: number for number, channel in enumerate(self.WORKER_PRIORITY)}
        channels = sorted(channels, key=lambda channel: rank.get(channel, len(rank)))
        indexes = self._receive_list_names(channels)
        if indexes is None:
            return None, None
        for index, list_names in indexes.items():
            # A message the gate holds yields nothing: take the next one.
            while True:
                found = self._popget(keys=list_names, client=self.connection(index))
                if not found:
                    break
                unpacked = self._unpack(found[0], found[1])
                if unpacked[0] is not None:
                    return unpacked
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
        self._ready.extend(self._expand(list_name[len(self.prefix):].decode("utf8"), self.deserialize(content)))
        self._ready.extend(self.gate.overdue())
        return self._ready.popleft() if self._ready else (None, None)

    def _expand(self, channel, message):
        """One (channel, message) per target (a Group message names several sockets), through the gate."""
        channel = message.pop("__asgi_channel__", channel)
        targets = message.pop(self.TARGETS, None)
        pairs = []
        for target in ([channel] if targets is None else targets):
            pairs.extend(self.gate.admit(target, message))
        return pairs

    # daphne's "twisted" mode: it waits on this Deferred and dispatches what it gets.

    def receive_twisted(self, channels):
        from twisted.internet import defer, threads

        if self._outbox is None:
            self._outbox = queue.Queue()
            threading.Thread(target=self._write_outbox, name="layer-outbox", daemon=True).start()
        if self._ready:
            return defer.succeed(self._ready.popleft())
        return threads.deferToThread(self._receive_batch, channels).addCallback(self._first_of)

    def _first_of(self, batch):
        if self.pending_disconnects and not self._redis_down:
            self.flush_disconnects()
        if not batch:
            return None, None
        self._ready.extend(batch[1:])
        return batch[0]

    def _receive_batch(self, channels):
        """On a thread: up to BATCH messages from daphne's process channel, waiting if there are none.

        Runs at least once a second (BLPOP times out after one), so it also keeps
        daphne's heartbeat and asks for presence sweeps.
        """
        (index, list_names), = self._receive_list_names(channels).items()
        connection = self.connection(index)
        try:
            self._keep_alive(channels[0])
            raw = self._popbatch(keys=list_names[:1], args=[self.BATCH], client=connection)
            if not raw:
                popped = connection.blpop(list_names, timeout=1)
                if popped:
                    raw = [connection.pipeline().get(popped[1]).delete(popped[1]).execute()[0]]
                    raw += self._popbatch(keys=list_names[:1], args=[self.BATCH - 1], client=connection)
        except redis.exceptions.ConnectionError as error:
            if not self._redis_down:
                log.error("cannot reach Redis, retrying: %s", error)
            self._redis_down = True
            time.sleep(0.1)  # on the reader's thread: do not spin while Redis is down
            return []
        if self._redis_down:
            log.warning("Redis is reachable again")
            self._redis_down = False
        batch = []
        for content in raw:
            if content:
                batch.extend(self._expand(channels[0], self.deserialize(content)))
        return batch + self.gate.overdue()

    def _keep_alive(self, process):
        """Refresh this daphne's heartbeat (once a second) and ask for a presence sweep (now and then)."""
        from django.conf import settings

        from channels_example import presence

        now = time.monotonic()
        if now - self._heartbeat_at >= 1:
            self._heartbeat_at = now
            presence.heartbeat(process)
        if now - self._sweep_at >= settings.PRESENCE_SWEEP_INTERVAL:
            self._sweep_at = now
            try:
                StockRedisChannelLayer.send(self, presence.SWEEP_CHANNEL, {"from": process})
            except self.ChannelFull:
                log.warning("cannot ask for a presence sweep: %s is full (are the workers running?)",
                            presence.SWEEP_CHANNEL)

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
    """asgiref's in-memory layer (runserver's), with the changes above. runserver is one
    process, so no daphne can die without its workers: there is no heartbeat to keep."""

    extensions = StockInMemoryChannelLayer.extensions + [GATE]

    def __init__(self, **config):
        super().__init__(**config)
        self._ready = collections.deque()
        self._ready_lock = threading.Lock()

    def receive(self, channels, block=False):
        # Only runserver's daphne receives on a process channel ("...!"); its gated
        # messages wait here. Workers receive on the others, which are never gated.
        if len(channels) == 1 and channels[0].endswith("!"):
            with self._ready_lock:
                self._ready.extend(self.gate.overdue())
                while not self._ready:
                    channel, message = super().receive(channels, block)
                    if channel is None:
                        return None, None
                    self._ready.extend(self.gate.admit(channel, message))
                return self._ready.popleft()
        return super().receive(channels, block)

    def _count_drop(self, channel):
        """The in-memory count is ``dropped``; there is no other process to tell."""
