"""Presence: who is in each room, told to the room as people join and leave.

What is promised (the argument is in docs/history.md):

* A joining client's welcome frame lists the handles in the room, itself included;
  after it, the client receives every later join and leave event of the room once
  (the layer's gate holds and numbers them like chat messages: PRESENCE_SEQ_KEY).
* Every event carries ``members``, the room's count right after it, read in the same
  atomic step as the change, so counts are right with any number of workers and
  daphnes.
* A socket whose daphne process died without sending its disconnect (``kill -9``, a
  lost host) leaves presence, its Group and the room's count within GHOST_SECONDS:
  each daphne's layer refreshes a heartbeat key once a second (``heartbeat``) and
  asks the workers for a sweep every PRESENCE_SWEEP_INTERVAL; ``sweep`` finds the
  daphnes whose heartbeat expired (DAPHNE_HEARTBEAT_TTL) and removes their sockets.

The members of a room live in Redis on the room's shard (a hash: reply channel ->
handle, and a counter numbering its changes), and each daphne's sockets in an index
on the daphne's shard; under runserver, one process, they live in memory and nothing
needs sweeping.
"""
import logging
import threading

from channels import Group
from django.conf import settings

from channels_example import protocol, rooms
from channels_example.layers import PRESENCE_SEQ_KEY, PRESENCE_UPTO_KEY, gated

log = logging.getLogger(__name__)

SWEEP_CHANNEL = "presence.sweep"
KEY_PREFIX = "channels_example:room:"
DAPHNES_KEY = "channels_example:daphnes"
HEARTBEAT_PREFIX = "channels_example:heartbeat:"
SOCKETS_PREFIX = "channels_example:daphne-sockets:"
SWEEP_LOCK_KEY = "channels_example:sweep:lock"
SWEEP_LAST_KEY = "channels_example:sweep:last"
SWEEP_WARMUP_KEY = "channels_example:sweep:warm-up"


def ghost_seconds():
    """The longest a dead daphne's socket stays present: its heartbeat's life, the wait
    for the next sweep, and a second for the sweep request to reach a worker."""
    return settings.DAPHNE_HEARTBEAT_TTL + settings.PRESENCE_SWEEP_INTERVAL + 1


def join(room, socket, handle):
    """Add ``socket`` to the room's members; return its welcome frame and the room's join event.

    Call it after adding the socket to the room's Group. Send the welcome right after
    the accept and the event to the room's Group after that.
    """
    count, number, handles = members().join(room, socket, handle)
    welcome = gated(protocol.welcome(room, handle, handles), PRESENCE_UPTO_KEY, number)
    return welcome, gated(protocol.presence(room, "join", handle, count), PRESENCE_SEQ_KEY, number)


def leave(room, socket):
    """Remove ``socket`` from the room's members and tell the room; nothing if it was not a member."""
    left = members().leave(room, socket)
    if left is not None:
        handle, count, number = left
        event = protocol.presence(room, "leave", handle, count)
        Group(rooms.group_name(room)).send(gated(event, PRESENCE_SEQ_KEY, number))


def daphne_of(socket):
    """The daphne process a reply channel belongs to: its name up to and including "!"."""
    return socket[:socket.index("!") + 1] if "!" in socket else socket


def heartbeat(process):
    """Mark a daphne process alive for DAPHNE_HEARTBEAT_TTL seconds (its layer calls this every second)."""
    from channels_example.shards import client_for

    ttl_ms = int(settings.DAPHNE_HEARTBEAT_TTL * 1000)
    client_for(HEARTBEAT_PREFIX + process).set(HEARTBEAT_PREFIX + process, 1, px=ttl_ms)
    client_for(DAPHNES_KEY).zadd(DAPHNES_KEY, 0, process)


def sweep():
    """Remove from presence and their Groups the sockets of daphnes whose heartbeat expired.

    At most one sweep runs per PRESENCE_SWEEP_INTERVAL. After a pause in sweeping (Redis
    or every daphne was down) no daphne is declared dead for DAPHNE_HEARTBEAT_TTL, so that
    the living have time to refresh their heartbeats. Returns how many sockets it removed.
    """
    if not settings.REDIS_HOSTS:
        return 0
    from channels_example.shards import client_for

    registry = client_for(DAPHNES_KEY)
    ttl_ms = int(settings.DAPHNE_HEARTBEAT_TTL * 1000)
    if not registry.set(SWEEP_LOCK_KEY, 1, nx=True, px=int(settings.PRESENCE_SWEEP_INTERVAL * 1000) - 200):
        return 0
    # SWEEP_LAST_KEY exists while sweeps keep coming; when it had expired, warm up first.
    if not registry.set(SWEEP_LAST_KEY, 1, px=ttl_ms, xx=True):
        registry.pipeline().set(SWEEP_LAST_KEY, 1, px=ttl_ms).set(SWEEP_WARMUP_KEY, 1, px=ttl_ms).execute()
        return 0
    if registry.exists(SWEEP_WARMUP_KEY):
        return 0
    removed = 0
    for process in registry.zrange(DAPHNES_KEY, 0, -1):
        process = process.decode("utf-8")
        if client_for(HEARTBEAT_PREFIX + process).exists(HEARTBEAT_PREFIX + process):
            continue
        removed += _remove_daphne(process)
        registry.zrem(DAPHNES_KEY, process)
    return removed


def _remove_daphne(process):
    from channels_example.shards import client_for

    index_key = SOCKETS_PREFIX + process
    index = client_for(index_key)
    sockets = index.hgetall(index_key)
    for socket, room in sockets.items():
        socket, room = socket.decode("utf-8"), room.decode("utf-8")
        Group(rooms.group_name(room)).discard(socket)
        leave(room, socket)
        index.hdel(index_key, socket)
    log.warning("daphne %s stopped without closing its sockets: removed %d of them from presence and their rooms",
                process, len(sockets))
    return len(sockets)


class LocalMembers:
    """Members in this process's memory: for runserver, whose threads share it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rooms = {}

    def join(self, room, socket, handle):
        with self._lock:
            state = self._rooms.setdefault(room, {"members": {}, "number": 0})
            state["members"][socket] = handle
            state["number"] += 1
            return len(state["members"]), state["number"], list(state["members"].values())

    def leave(self, room, socket):
        with self._lock:
            state = self._rooms.get(room)
            if state is None or socket not in state["members"]:
                return None
            handle = state["members"].pop(socket)
            state["number"] += 1
            return handle, len(state["members"]), state["number"]


# KEYS: the room's members hash, its change counter. ARGV: socket, handle, expiry (s).
_JOIN = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local number = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local handles = redis.call('HVALS', KEYS[1])
return {#handles, number, handles}
"""

# KEYS: the room's members hash, its change counter. ARGV: socket. Nil if not a member.
_LEAVE = """
local handle = redis.call('HGET', KEYS[1], ARGV[1])
if not handle then return nil end
redis.call('HDEL', KEYS[1], ARGV[1])
local number = redis.call('INCR', KEYS[2])
return {handle, redis.call('HLEN', KEYS[1]), number}
"""


class RedisMembers:
    """Members in Redis on the room's shard, and each daphne's sockets on the daphne's shard."""

    def __init__(self):
        from channels_example import shards

        self._client_for = shards.client_for
        self._run_script = shards.run_script

    def _run(self, source, room, args):
        base = KEY_PREFIX + rooms.group_name(room)
        return self._run_script(source, base, [base + ":members", base + ":presence"], args)

    def join(self, room, socket, handle):
        # The daphne's index first: a socket in a room but not in the index could never be swept.
        index_key = SOCKETS_PREFIX + daphne_of(socket)
        self._client_for(index_key).pipeline().hset(index_key, socket, room).expire(
            index_key, settings.WEBSOCKET_LIFETIME).execute()
        count, number, handles = self._run(_JOIN, room, [socket, handle, settings.WEBSOCKET_LIFETIME])
        return count, number, [value.decode("utf-8") for value in handles]

    def leave(self, room, socket):
        left = self._run(_LEAVE, room, [socket])
        index_key = SOCKETS_PREFIX + daphne_of(socket)
        self._client_for(index_key).hdel(index_key, socket)
        if left is None:
            return None
        handle, count, number = left
        return handle.decode("utf-8"), count, number


_members = None


def members():
    """Where room members live for this deployment: Redis when REDIS_URL is set, else memory."""
    global _members
    if _members is None:
        _members = RedisMembers() if settings.REDIS_HOSTS else LocalMembers()
    return _members
