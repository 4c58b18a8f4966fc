"""The sequencers behind @in_order (channels_example.chat.ordering): a socket's frames released in order.

A sequencer takes each completed frame of a socket, with its order and its sends, and
delivers the sends of every frame now due, oldest first (a reorder buffer,
channels_example.layers.reorder, with a lease so that one worker at a time delivers for a
socket):

* ``LocalSequencer``: in this process's memory, for runserver's worker threads;
* ``RedisSequencer``: in a Redis hash per socket, the same algorithm in Lua, for
  runworker processes on any host; two round trips per frame (claim, then release), and
  one per send in the frame;
* ``ScriptedSequencer`` (channels_example.chat.scripted): the same hash, and the sends
  done inside the same script, in one round trip, where one Redis server holds every key.

A frame's sends are ``[kind, name, content]``: ``room`` (a chat message for
``Room.publish``), ``group`` or ``channel``.
"""
import json
import threading
import time
import uuid

from channels import Channel, Group
from django.conf import settings

from channels_example.chat.rooms import Room
from channels_example.layers.reorder import ReorderBuffer

KEY_PREFIX = "channels_example:order:"
CLOSING_KEY = KEY_PREFIX + "closing"


def deliver(sends, socket=None):
    """Send a frame's sends, in order: to a Room (as sent by ``socket``), a Group or a Channel."""
    for kind, name, content in sends:
        if kind == "room":
            Room(name).publish(content["message"], sender=content["sender"])
        else:
            (Group if kind == "group" else Channel)(name).send(content, immediately=True)


class Sequencer:
    """Releases each socket's frames in order; subclasses keep the state.

    ``claim`` parks a completed frame and, if no other worker holds the socket's
    lease, takes it and returns the frames now due; ``release`` returns the next
    frames due to the lease holder, or gives the lease up when there are none;
    ``sweep`` takes a free lease without parking anything.
    """

    def complete(self, socket, order, sends, final=False):
        """A frame of ``socket`` is done: deliver its sends in their turn (now, or by whoever completes
        the frame before it)."""
        token = uuid.uuid4().hex
        self.deliver_while_due(socket, token, self.claim(socket, order, json.dumps(sends), token, final))
        if final and not self.finished(socket):
            self.closing(socket)

    def sweep_socket(self, socket):
        """Deliver what is due for ``socket`` without a new frame: its gap has gone stale."""
        token = uuid.uuid4().hex
        self.deliver_while_due(socket, token, self.sweep(socket, token))

    def deliver_while_due(self, socket, token, batch):
        while batch:
            for payload in batch:
                deliver(json.loads(payload), socket)
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
            return [(None, socket) for socket, since in self._closing.items() if since < stale]

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


# ``pop_due(h, now, gap_ms)``: ReorderBuffer.pop_due (channels_example.layers.reorder) over a
# socket's hash ``h``, whose fields are ``next``, ``since`` (ms) and ``p:<order>`` (the parked
# frames). Returns the payloads due now, oldest first, and their orders; they leave the hash.
LUA_POP_DUE = """
    local function pop_due(h, now, gap_ms)
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
      local batch, orders = {}, {}
      while true do
        local payload = redis.call('HGET', h, 'p:' .. nxt)
        if not payload then break end
        redis.call('HDEL', h, 'p:' .. nxt)
        table.insert(batch, payload)
        table.insert(orders, nxt)
        nxt = nxt + 1
      end
      redis.call('HSET', h, 'next', nxt)
      if #batch > 0 then
        local parked = false
        for _, field in ipairs(redis.call('HKEYS', h)) do
          if string.sub(field, 1, 2) == 'p:' then parked = true break end
        end
        if parked then redis.call('HSET', h, 'since', now) else redis.call('HDEL', h, 'since') end
      end
      return batch, orders
    end
"""


class RedisSequencer(Sequencer):
    """State in Redis, a hash per socket on its room's server (``socket_client``): for runworker on any host.

    ``_RUN`` is ``pop_due`` (LUA_POP_DUE) plus the lease.
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
        value = self.shards.socket_client(KEY_PREFIX + socket).hget(KEY_PREFIX + socket, "next")
        return int(value) if value is not None else 1

    def finished(self, socket):
        next_due, final = self.shards.socket_client(KEY_PREFIX + socket).hmget(KEY_PREFIX + socket, "next", "final")
        return next_due is None or final is None or int(next_due) > int(final)

    def closing(self, socket):
        self.shards.socket_client(CLOSING_KEY).zadd(CLOSING_KEY, **{socket: _now_ms()})

    def closing_due(self):
        """Each server keeps the closing sockets whose keys it holds: ``[(shard index, socket)]``."""
        stale = _now_ms() - int(settings.ORDERING_GAP_SECONDS * 1000)
        layer = self.shards.layer
        return [(index, socket.decode("utf-8")) for index in range(layer.ring_size)
                for socket in layer.connection(index).zrangebyscore(CLOSING_KEY, "-inf", stale)]

    def forget_closing(self, socket):
        self.shards.socket_client(CLOSING_KEY).zrem(CLOSING_KEY, socket)

    def _call(self, socket, source, args):
        key = KEY_PREFIX + socket
        return [payload.decode("utf-8") for payload in self.shards.run_on(self.shards.socket_client(key), source,
                                                                          [key], args)]

    @staticmethod
    def _timing():
        return int(settings.ORDERING_GAP_SECONDS * 1000), int(settings.ORDERING_LEASE_SECONDS * 1000)

    # KEYS[1]: the socket's hash. Fields: next, lease, lease_until, since (ms), final, p:<order>.
    _RUN = LUA_POP_DUE + """
        local function run(h, now, gap_ms, lease_ms, token)
          local batch = pop_due(h, now, gap_ms)
          if #batch > 0 then
            redis.call('HMSET', h, 'lease', token, 'lease_until', now + lease_ms)
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


