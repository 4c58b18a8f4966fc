"""Each socket's chat messages reach the room in the order the client sent them.

Why this is needed: channels 1.x gives each of a socket's frames (``websocket.receive``,
numbered by daphne in ``order``) to whichever worker is free. With two ``runworker``
processes, or runserver's four worker threads, frame n+1 is often handled, and its
``Group.send`` flushed, before frame n. channels' own ``enforce_ordering`` does not
help with Group sends: it releases frame n+1 to the next worker before frame n's
buffered sends are flushed; with ``immediately=True`` it keeps order but requeues
frames in a loop whose cost grows quadratically (78 s for a 500-message burst).

What ``@in_order`` guarantees: the sends of a socket's frames (the Group message, or
the error frame to the sender) are delivered in the socket's ``order``, with any
number of workers and threads, on any number of hosts. The consumer itself runs at
once on any worker; its sends are taken out of channels' end-of-consumer buffer and
handed to the socket's *sequencer* with the frame's order:

* the frame the socket is waiting for is delivered at once, together with every
  frame already parked behind it, by the worker that completed it;
* a frame that completes early is parked, and its worker returns at once: no worker
  ever waits for another;
* one worker at a time delivers for a socket (a lease that expires after
  LEASE_SECONDS if its worker dies).

Cost: two round trips to Redis per frame (one script to park or claim, one to hand
over); see docs/ordering.md for the measurements.

Faults: the channel layer delivers at most once, so a frame can be lost with a worker
killed while handling it. Frames after the gap are then held until a later frame
arrives more than GAP_SECONDS after the first of them was parked (the disconnect,
a socket's last frame, waits that long itself); then they are delivered in order and
the gap is skipped. A frame that completes after its turn was skipped is delivered
at once rather than lost.
"""
import functools
import json
import threading
import time
import uuid

from channels import Channel, Group
from channels.message import pending_message_store
from django.conf import settings

LEASE_SECONDS = 2
GAP_SECONDS = 1.0
SWEEP_INTERVAL = 0.02
# A closed socket's state is kept this long, as long as the layer keeps a message
# (its "expiry"), so that a frame completing after the disconnect is still delivered.
CLOSED_SECONDS = 60
KEY_PREFIX = "channels_example:order:"


def in_order(consumer):
    """Deliver what the consumer sends for each frame in the socket's frame order.

    Wrap a ``websocket.receive`` or ``websocket.disconnect`` consumer (outside
    ``@channel_session``). Frames without an ``order`` key are delivered as usual.
    """

    @functools.wraps(consumer)
    def inner(message, *args, **kwargs):
        order = message.content.get("order")
        buffered = getattr(pending_message_store.threadlocal, "messages", None)
        if order is None or buffered is None or not settings.ORDERED_DELIVERY:
            return consumer(message, *args, **kwargs)
        start = len(buffered)
        try:
            return consumer(message, *args, **kwargs)
        finally:
            sends = [_describe(target, content) for target, content in buffered[start:]]
            del buffered[start:]
            final = message.channel.name == "websocket.disconnect"
            sequencer().complete(message.reply_channel.name, order, sends, final)

    return inner


def _describe(target, content):
    kind = getattr(target, "kind", None) or ("group" if isinstance(target, Group) else "channel")
    return [kind, target.name, content]


def deliver(sends):
    """Send a frame's sends, in order: to a Group, a Channel, or a room (a chat message that
    channels_example.history.publish numbers and delivers)."""
    from channels_example import history

    for kind, name, content in sends:
        if kind == "room":
            history.publish(name, content)
        else:
            target = Group(name) if kind == "group" else Channel(name)
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
        self._deliver_while_due(socket, token, self.claim(socket, order, json.dumps(sends), token, final))
        if final:
            # The disconnect is the socket's last frame: no later frame will come to
            # skip a gap left by a lost frame, so wait (bounded) until it is released.
            deadline = time.monotonic() + GAP_SECONDS + LEASE_SECONDS
            while self.next_order(socket) <= order and time.monotonic() < deadline:
                time.sleep(SWEEP_INTERVAL)
                self._deliver_while_due(socket, token, self.sweep(socket, token))

    def _deliver_while_due(self, socket, token, batch):
        while batch:
            for payload in batch:
                deliver(json.loads(payload))
            batch = self.release(socket, token)


class LocalSequencer(Sequencer):
    """State in this process's memory: for runserver, whose worker threads share it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets = {}

    def claim(self, socket, order, payload, token, final):
        now = time.monotonic()
        with self._lock:
            state = self._sockets.setdefault(socket, {"next": 1, "parked": {}, "lease": None, "since": None})
            if order < state["next"]:
                return [payload]
            state["parked"][order] = payload
            if order != state["next"] and state["since"] is None:
                state["since"] = now
            if final:
                state["closed"] = now
            return self._take_lease(socket, state, token, now)

    def sweep(self, socket, token):
        now = time.monotonic()
        with self._lock:
            state = self._sockets.get(socket)
            return self._take_lease(socket, state, token, now) if state else []

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
            return state["next"] if state else 1

    def _take_lease(self, socket, state, token, now):
        if state["lease"] and state["lease"][1] > now:
            return []
        return self._run(state, token, now)

    def _run(self, state, token, now):
        parked = state["parked"]
        if parked and state["next"] not in parked:
            if state["since"] is not None and now - state["since"] > GAP_SECONDS:
                state["next"] = min(parked)
        batch = []
        while state["next"] in parked:
            batch.append(parked.pop(state["next"]))
            state["next"] += 1
        if batch:
            state["lease"] = (token, now + LEASE_SECONDS)
            state["since"] = now if parked else None
        else:
            state["lease"] = None
            self._forget_closed(now)
        return batch

    def _forget_closed(self, now):
        """Drop sockets closed so long ago that no straggling frame can still come."""
        gone = [socket for socket, state in self._sockets.items()
                if state.get("closed") and now - state["closed"] > CLOSED_SECONDS]
        for socket in gone:
            del self._sockets[socket]


# KEYS[1]: the socket's hash. Fields: next, lease, lease_until, since (ms), p:<order>.
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
_CLAIM = _RUN + """
local h = KEYS[1]
local order, now = tonumber(ARGV[1]), tonumber(ARGV[4])
local nxt = tonumber(redis.call('HGET', h, 'next') or '1')
if order < nxt then return {ARGV[2]} end
redis.call('HSET', h, 'p:' .. order, ARGV[2])
if order ~= nxt and redis.call('HEXISTS', h, 'since') == 0 then redis.call('HSET', h, 'since', now) end
local batch = take_lease(h, now, tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[3])
-- After take_lease: delivering a socket's first frame empties the hash, which deletes it
-- with its expiry, and writing "next" makes it anew.
if ARGV[7] == '1' then redis.call('EXPIRE', h, ARGV[9]) else redis.call('EXPIRE', h, ARGV[8]) end
return batch
"""

# ARGV: token, now ms, gap ms, lease ms
_SWEEP = _RUN + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
return take_lease(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[1])
"""

# ARGV: token, now ms, gap ms, lease ms
_RELEASE = _RUN + """
local h = KEYS[1]
if redis.call('HGET', h, 'lease') ~= ARGV[1] then return {} end
return run(h, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[1])
"""


class RedisSequencer(Sequencer):
    """State in Redis, on the shard of the socket's reply channel: for runworker on any host."""

    def __init__(self):
        from channels_example import shards

        self._client_for = shards.client_for
        self._run_script = shards.run_script

    def _call(self, socket, source, args):
        key = KEY_PREFIX + socket
        return [payload.decode("utf-8") for payload in self._run_script(source, key, [key], args)]

    def claim(self, socket, order, payload, token, final):
        args = [order, payload, token, _now_ms(), int(GAP_SECONDS * 1000), LEASE_SECONDS * 1000,
                int(final), settings.WEBSOCKET_LIFETIME, CLOSED_SECONDS]
        return self._call(socket, _CLAIM, args)

    def sweep(self, socket, token):
        return self._call(socket, _SWEEP, [token, _now_ms(), int(GAP_SECONDS * 1000), LEASE_SECONDS * 1000])

    def release(self, socket, token):
        return self._call(socket, _RELEASE, [token, _now_ms(), int(GAP_SECONDS * 1000), LEASE_SECONDS * 1000])

    def next_order(self, socket):
        key = KEY_PREFIX + socket
        value = self._client_for(key).hget(key, "next")
        return int(value) if value is not None else 1


def _now_ms():
    return int(time.time() * 1000)


_sequencer = None


def sequencer():
    """The sequencer for this deployment: in Redis when REDIS_URL is set, else in memory."""
    global _sequencer
    if _sequencer is None:
        _sequencer = RedisSequencer() if settings.REDIS_HOSTS else LocalSequencer()
    return _sequencer
