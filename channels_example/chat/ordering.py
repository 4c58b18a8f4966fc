"""Each socket's chat messages reach the room in the order the client sent them.

Why this is needed: channels 1.x gives each of a socket's frames (``websocket.receive``,
numbered by daphne in ``order``) to whichever worker is free. With two ``runworker``
processes, or runserver's four worker threads, frame n+1 is often handled, and its
``Group.send`` flushed, before frame n. channels' own ``enforce_ordering`` does not
help with Group sends: it releases frame n+1 to the next worker before frame n's
buffered sends are flushed; with ``immediately=True`` it keeps order but requeues
frames in a loop whose cost grows quadratically (78 s for a 500-message burst).

What ``@in_order`` guarantees: the sends of a socket's frames (the room's chat message,
or the error frame to the sender) are delivered in the socket's ``order``, with any
number of workers and threads, on any number of hosts. The consumer itself runs at
once on any worker; its sends are taken out of channels' end-of-consumer buffer and
handed to the socket's *sequencer* with the frame's order:

* the frame the socket is waiting for is delivered at once, together with every
  frame already parked behind it, by the worker that completed it;
* a frame that completes early is parked, and its worker returns at once: no worker
  ever waits for another;
* one worker at a time delivers for a socket (a lease that expires after
  settings.ORDERING_LEASE_SECONDS if its worker dies).

The sequencer is a reorder buffer (channels_example.layers.reorder) with a lease: in
this process's memory under runserver, in a Redis hash per socket otherwise (the same
algorithm in Lua, ``_RUN``). Cost: two round trips to Redis per frame (one script to
park or claim, one to hand over); see docs/ordering.md for the measurements.

Faults: the channel layer delivers at most once, so a frame can be lost with a worker
killed while handling it. Frames after the gap are then held until a later frame
arrives more than settings.ORDERING_GAP_SECONDS after the first of them was parked;
then they are delivered in order and the gap is skipped. A frame that completes after
its turn was skipped is delivered at once rather than lost. The disconnect is a
socket's last frame, so no later frame can come to skip a gap in front of it: a
disconnect left parked is put on a list that the timed ``chat.sweep`` (``sweep``)
delivers once its gap is stale.
"""
import functools
import json
import threading
import time
import uuid

from channels import Channel, Group
from channels.message import pending_message_store
from django.conf import settings

from channels_example.backends.shards import PerDeployment
from channels_example.chat.rooms import Room
from channels_example.layers.reorder import ReorderBuffer

KEY_PREFIX = "channels_example:order:"
CLOSING_KEY = KEY_PREFIX + "closing"


def in_order(consumer):
    """Deliver what the consumer sends for each frame in the socket's frame order.

    Wrap a ``websocket.receive`` or ``websocket.disconnect`` consumer (outside
    ``@channel_session``). Frames without an ``order`` key are delivered as usual.
    """

    @functools.wraps(consumer)
    def inner(message, *args, **kwargs):
        order = message.content.get("order")
        buffered = getattr(pending_message_store.threadlocal, "messages", None)
        if order is None or buffered is None:
            return consumer(message, *args, **kwargs)
        start = len(buffered)
        try:
            return consumer(message, *args, **kwargs)
        finally:
            sends = [_describe(target, content) for target, content in buffered[start:]]
            del buffered[start:]
            final = message.channel.name == "websocket.disconnect"
            sequencer().complete(message.reply_channel.name, order, sends, final)

    inner.unordered = consumer  # for measuring what ordering costs (bench/ordering_cost.py)
    return inner


def next_order(socket):
    """The order of the socket's next frame not yet delivered (the layer's ``socket_progress``)."""
    return sequencer().next_order(socket)


def sweep():
    """Deliver the disconnects left parked behind a lost frame, once their gap is stale (on chat.sweep)."""
    chosen = sequencer()
    for socket in chosen.closing_due():
        token = uuid.uuid4().hex
        chosen.deliver_while_due(socket, token, chosen.sweep(socket, token))
        if chosen.finished(socket):
            chosen.forget_closing(socket)


def _describe(target, content):
    kind = getattr(target, "kind", None) or ("group" if isinstance(target, Group) else "channel")
    return [kind, target.name, content]


def deliver(sends):
    """Send a frame's sends, in order: to a Room, a Group or a Channel."""
    for kind, name, content in sends:
        target = {"room": Room, "group": Group}.get(kind, Channel)(name)
        target.send(content, immediately=True)


class Sequencer:
    """Releases each socket's frames in order; subclasses keep the state.

    ``claim`` parks a completed frame and, if no other worker holds the socket's
    lease, takes it and returns the frames now due; ``release`` returns the next
    frames due to the lease holder, or gives the lease up when there are none;
    ``sweep`` takes a free lease without parking anything.
    """

    def complete(self, socket, order, sends, final=False):
        token = uuid.uuid4().hex
        self.deliver_while_due(socket, token, self.claim(socket, order, json.dumps(sends), token, final))
        if final and not self.finished(socket):
            self.closing(socket)

    def deliver_while_due(self, socket, token, batch):
        while batch:
            for payload in batch:
                deliver(json.loads(payload))
            batch = self.release(socket, token)


class LocalSequencer(Sequencer):
    """State in this process's memory: for runserver, whose worker threads share it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets = {}
        self._closing = {}  # socket -> when its parked disconnect was seen

    def claim(self, socket, order, payload, token, final):
        now = time.monotonic()
        with self._lock:
            state = self._sockets.get(socket)
            if state is None:
                state = self._sockets[socket] = {"buffer": ReorderBuffer(1), "lease": None}
            if not state["buffer"].push(order, payload, now):
                return [payload]
            if final:
                state["closed"], state["final"] = now, order
            return self._take_lease(state, token, now)

    def sweep(self, socket, token):
        now = time.monotonic()
        with self._lock:
            state = self._sockets.get(socket)
            return self._take_lease(state, token, now) if state else []

    def release(self, socket, token):
        now = time.monotonic()
        with self._lock:
            state = self._sockets.get(socket)
            if state is None or not state["lease"] or state["lease"][0] != token:
                return []
            return self._run(state, token, now)

    def next_order(self, socket):
        with self._lock:
            state = self._sockets.get(socket)
            return state["buffer"].next if state else 1

    def finished(self, socket):
        with self._lock:
            state = self._sockets.get(socket)
            return state is None or state["buffer"].next > state.get("final", float("inf"))

    def closing(self, socket):
        with self._lock:
            self._closing[socket] = time.monotonic()

    def closing_due(self):
        stale = time.monotonic() - settings.ORDERING_GAP_SECONDS
        with self._lock:
            return [socket for socket, since in self._closing.items() if since < stale]

    def forget_closing(self, socket):
        with self._lock:
            self._closing.pop(socket, None)

    def _take_lease(self, state, token, now):
        if state["lease"] and state["lease"][1] > now:
            return []
        return self._run(state, token, now)

    def _run(self, state, token, now):
        state["buffer"].gap_seconds = settings.ORDERING_GAP_SECONDS  # read when used, as in Redis
        batch = state["buffer"].pop_due(now)
        if batch:
            state["lease"] = (token, now + settings.ORDERING_LEASE_SECONDS)
        else:
            state["lease"] = None
            self._forget_closed(now)
        return batch

    def _forget_closed(self, now):
        """Drop sockets closed so long ago that no straggling frame can still come."""
        gone = [socket for socket, state in self._sockets.items()
                if state.get("closed") and now - state["closed"] > settings.CHANNEL_MESSAGE_EXPIRY]
        for socket in gone:
            del self._sockets[socket]


class RedisSequencer(Sequencer):
    """State in Redis, a hash per socket on the socket's shard: for runworker on any host.

    ``_RUN`` is ReorderBuffer.pop_due (channels_example.layers.reorder) over the hash's
    fields ``next``, ``since`` and ``p:<order>`` (the parked frames), plus the lease.
    """

    def __init__(self, shards):
        self.shards = shards

    def claim(self, socket, order, payload, token, final):
        args = [order, payload, token, _now_ms(), *self._timing(), int(final),
                settings.WEBSOCKET_LIFETIME, settings.CHANNEL_MESSAGE_EXPIRY]
        return self._call(socket, self.lua_claim, args)

    def sweep(self, socket, token):
        return self._call(socket, self.lua_sweep, [token, _now_ms(), *self._timing()])

    def release(self, socket, token):
        return self._call(socket, self.lua_release, [token, _now_ms(), *self._timing()])

    def next_order(self, socket):
        value = self.shards.client(KEY_PREFIX + socket).hget(KEY_PREFIX + socket, "next")
        return int(value) if value is not None else 1

    def finished(self, socket):
        next_due, final = self.shards.client(KEY_PREFIX + socket).hmget(KEY_PREFIX + socket, "next", "final")
        return next_due is None or final is None or int(next_due) > int(final)

    def closing(self, socket):
        self.shards.client(CLOSING_KEY).zadd(CLOSING_KEY, **{socket: _now_ms()})

    def closing_due(self):
        stale = _now_ms() - int(settings.ORDERING_GAP_SECONDS * 1000)
        return [socket.decode("utf-8") for socket in self.shards.client(CLOSING_KEY).zrangebyscore(
            CLOSING_KEY, "-inf", stale)]

    def forget_closing(self, socket):
        self.shards.client(CLOSING_KEY).zrem(CLOSING_KEY, socket)

    def _call(self, socket, source, args):
        key = KEY_PREFIX + socket
        return [payload.decode("utf-8") for payload in self.shards.run(source, [key], args)]

    @staticmethod
    def _timing():
        return int(settings.ORDERING_GAP_SECONDS * 1000), int(settings.ORDERING_LEASE_SECONDS * 1000)

    # KEYS[1]: the socket's hash. Fields: next, lease, lease_until, since (ms), final, p:<order>.
    _RUN = """
        local function run(h, now, gap_ms, lease_ms, token)
          local nxt = tonumber(redis.call('HGET', h, 'next') or '1')
          local since = tonumber(redis.call('HGET', h, 'since') or '-1')
          if redis.call('HEXISTS', h, 'p:' .. nxt) == 0 and since >= 0 and now - since > gap_ms then
            local lowest = nil
            for _, field in ipairs(redis.call('HKEYS', h)) do
              if string.sub(field, 1, 2) == 'p:' then
                local n = tonumber(string.sub(field, 3))
                if lowest == nil or n < lowest then lowest = n end
              end
            end
            if lowest ~= nil then nxt = lowest end
          end
          local batch = {}
          while true do
            local payload = redis.call('HGET', h, 'p:' .. nxt)
            if not payload then break end
            redis.call('HDEL', h, 'p:' .. nxt)
            table.insert(batch, payload)
            nxt = nxt + 1
          end
          redis.call('HSET', h, 'next', nxt)
          if #batch > 0 then
            redis.call('HMSET', h, 'lease', token, 'lease_until', now + lease_ms)
            local parked = false
            for _, field in ipairs(redis.call('HKEYS', h)) do
              if string.sub(field, 1, 2) == 'p:' then parked = true break end
            end
            if parked then redis.call('HSET', h, 'since', now) else redis.call('HDEL', h, 'since') end
          else
            redis.call('HDEL', h, 'lease', 'lease_until')
          end
          return batch
        end

        local function take_lease(h, now, gap_ms, lease_ms, token)
          local until_ms = tonumber(redis.call('HGET', h, 'lease_until') or '0')
          if redis.call('HEXISTS', h, 'lease') == 1 and until_ms > now then return {} end
          return run(h, now, gap_ms, lease_ms, token)
        end
    """

    # ARGV: order, payload, token, now ms, gap ms, lease ms, final (0/1), ttl s, closed ttl s
    lua_claim = _RUN + """
        local h = KEYS[1]
        local order, now = tonumber(ARGV[1]), tonumber(ARGV[4])
        local nxt = tonumber(redis.call('HGET', h, 'next') or '1')
        if order < nxt then return {ARGV[2]} end
        redis.call('HSET', h, 'p:' .. order, ARGV[2])
        if order ~= nxt and redis.call('HEXISTS', h, 'since') == 0 then redis.call('HSET', h, 'since', now) end
        if ARGV[7] == '1' then redis.call('HSET', h, 'final', order) end
        local batch = take_lease(h, now, tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[3])
        -- After take_lease: delivering a socket's first frame empties the hash, which deletes it
        -- with its expiry, and writing "next" makes it anew.
        if redis.call('HEXISTS', h, 'final') == 1 then redis.call('EXPIRE', h, ARGV[9]) else redis.call('EXPIRE', h, ARGV[8]) end
        return batch
    """

    # ARGV: token, now ms, gap ms, lease ms
    lua_sweep = _RUN + """
        if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
        return take_lease(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[1])
    """

    # ARGV: token, now ms, gap ms, lease ms
    lua_release = _RUN + """
        local h = KEYS[1]
        if redis.call('HGET', h, 'lease') ~= ARGV[1] then return {} end
        return run(h, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[1])
    """


def _now_ms():
    return int(time.time() * 1000)


sequencer = PerDeployment(LocalSequencer, RedisSequencer)
