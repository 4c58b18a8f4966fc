"""Presence: who is in each room, told to the room as people join and leave.

What is promised (the argument is in docs/history.md):

* A joining client's welcome frame lists the handles in the room, itself included;
  after it, the client receives every later join and leave event of the room once
  (the layer's join gate holds and orders them like chat messages: STREAM).
* Every event carries ``members``, the room's count right after it, read in the same
  atomic step as the change, so counts are right with any number of workers and
  daphnes.
* Within a room a name belongs to one person at a time: a socket of another person
  with a name in use is refused (``handle_in_use``), in the same atomic step.
* A socket whose daphne process died without sending its disconnect (``kill -9``, a
  lost host) leaves presence, its Group and the room's count within ``ghost_seconds()``:
  each daphne keeps a heartbeat (channels_example.chat.processes) and the clock sends
  ``chat.sweep`` every SWEEP_INTERVAL; ``dead_daphnes`` finds the daphnes whose heartbeat
  stopped, and their sockets, for ``rooms.sweep`` to remove.

The members of a room live in Redis on the room's shard (a hash: reply channel ->
handle, and a counter numbering its changes), and each daphne's sockets in an index
beside them, on the room's shard; under runserver, one process, they live in memory and nothing
needs sweeping.

Functions here take a ``Room`` (channels_example.chat.rooms), which names the room's keys.
"""
import logging
import threading
from typing import Protocol

from django.conf import settings

from channels_example.backends.shards import PerDeployment
from channels_example.chat import lua, metrics, protocol
from channels_example.chat.processes import processes
from channels_example.layers import gate

log = logging.getLogger(__name__)

# The join gate's name for a room's presence events (gate_streams in settings.CHANNEL_LAYERS).
STREAM = "presence"
SOCKETS_PREFIX = "channels_example:daphne-sockets:"
SWEEP_LOCK_KEY = "channels_example:sweep:lock"
SWEEP_LAST_KEY = "channels_example:sweep:last"
SWEEP_WARMUP_KEY = "channels_example:sweep:warm-up"


def ghost_seconds():
    """The longest a dead daphne's socket stays present: its heartbeat's life, the wait
    for the next sweep, and a second for the sweep request to reach a worker."""
    return settings.DAPHNE_HEARTBEAT_TTL + settings.SWEEP_INTERVAL + 1


def join(room, socket, speaker):
    """Add ``socket`` to the room's members; return its welcome frame and the room's join event.

    Call it after adding the socket to the room's Group. Send the welcome right after
    the accept and the event to the room's Group after that. Raises ProtocolError
    ("handle_in_use") when another person has the speaker's name in the room.
    """
    joined = members().join(room, socket, speaker.handle, _holder(speaker))
    if joined is None:
        raise protocol.ProtocolError("handle_in_use", "someone else in %s is called %s: choose another name"
                                     % (room.name, speaker.handle))
    count, number, handles, signed_in = joined
    layer = room.channel_layer
    welcome = gate.snapshot(layer, protocol.welcome(room.name, speaker, handles, signed_in), STREAM, number)
    event = protocol.presence(room.name, "join", speaker.handle, count, speaker.signed_in)
    return welcome, gate.live(layer, event, STREAM, number)


def leave(room, socket):
    """Remove ``socket`` from the room's members: the room's leave event, or None if it was not a member."""
    left = members().leave(room, socket)
    if left is None:
        return None
    handle, holder, count, number = left
    event = protocol.presence(room.name, "leave", handle, count, holder.startswith("1 "))
    return gate.live(room.channel_layer, event, STREAM, number)


def event(room, frame):
    """A room event besides joins and leaves (a moderator's deletion or mute), numbered with them,
    so that the join gate puts it after any snapshot that predates it."""
    number = members().next_event(room)
    return gate.live(room.channel_layer, frame, STREAM, number)


def _holder(speaker):
    """Who holds a name in a room: signed in or not, and the person."""
    return "%d %s" % (speaker.signed_in, speaker.person)


def dead_daphnes():
    """``(daphne, [(room name, socket), ...])`` for each daphne whose heartbeat stopped.

    At most one sweep runs per SWEEP_INTERVAL, across every worker. After a pause in
    sweeping (Redis or every daphne was down) no daphne is declared dead for
    DAPHNE_HEARTBEAT_TTL, so that the living have time to refresh their heartbeats.
    Call ``forget_daphne`` once its sockets have left their rooms.
    """
    index = members()
    if not isinstance(index, RedisMembers):  # runserver: no daphne dies alone
        return []
    lock = index.shards.client(SWEEP_LOCK_KEY)
    ttl_ms = int(settings.DAPHNE_HEARTBEAT_TTL * 1000)
    if not lock.set(SWEEP_LOCK_KEY, 1, nx=True, px=max(int(settings.SWEEP_INTERVAL * 1000) - 200, 100)):
        return []
    # SWEEP_LAST_KEY exists while sweeps keep coming; when it had expired, warm up first.
    if not lock.set(SWEEP_LAST_KEY, 1, px=ttl_ms, xx=True):
        lock.pipeline().set(SWEEP_LAST_KEY, 1, px=ttl_ms).set(SWEEP_WARMUP_KEY, 1, px=ttl_ms).execute()
        return []
    if lock.exists(SWEEP_WARMUP_KEY):
        return []
    return [(daphne, index.sockets_of(daphne)) for daphne in processes().dead_daphnes()]


def forget_daphne(daphne, swept):
    processes().forget(daphne)
    log.warning("daphne %s stopped without closing its sockets: removed %d of them from presence and their rooms",
                daphne, swept)


class Members(Protocol):
    """A room's members: runserver's (LocalMembers) and Redis's (RedisMembers) pass one contract,
    tests/test_presence.py."""

    def join(self, room, socket: str, handle: str, holder: str):
        """``(count, number, handles, the handles held by someone signed in)``, or None when another person
        holds ``handle`` in the room."""

    def leave(self, room, socket: str):
        """``(handle, holder, count, number)``, or None when the socket was not a member."""

    def handles(self, room) -> list:
        """The handles of the room's members now."""

    def next_event(self, room) -> int:
        """The number of a room event besides joins and leaves (a moderator's), in the same count."""


class LocalMembers:
    """Members in this process's memory: for runserver, whose threads share it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rooms = {}

    def join(self, room, socket, handle, holder):
        """``(count, number, handles, signed-in handles)``, or None when another person holds ``handle`` in the room."""
        with self._lock:
            state = self._rooms.setdefault(room.name, {"members": {}, "names": {}, "number": 0})
            held = state["names"].get(handle)
            if held is not None and held[1] != holder:
                return None
            state["names"][handle] = ((held[0] if held else 0) + 1, holder)
            state["members"][socket] = handle
            state["number"] += 1
            metrics.counters().room(room.name, True)
            signed_in = [name for name, (_, held_by) in state["names"].items() if held_by.startswith("1 ")]
            return len(state["members"]), state["number"], list(state["members"].values()), signed_in

    def leave(self, room, socket):
        """``(handle, holder, count, number)``, or None when the socket was not a member."""
        with self._lock:
            state = self._rooms.get(room.name)
            if state is None or socket not in state["members"]:
                return None
            handle = state["members"].pop(socket)
            held, holder = state["names"].pop(handle)
            if held > 1:
                state["names"][handle] = (held - 1, holder)
            state["number"] += 1
            metrics.counters().room(room.name, bool(state["members"]))
            return handle, holder, len(state["members"]), state["number"]

    def handles(self, room):
        with self._lock:
            state = self._rooms.get(room.name)
            return list(state["members"].values()) if state else []

    def next_event(self, room):
        with self._lock:
            state = self._rooms.setdefault(room.name, {"members": {}, "names": {}, "number": 0})
            state["number"] += 1
            return state["number"]


JOIN, LEAVE = lua.source("join.lua"), lua.source("leave.lua")


class RedisMembers:
    """Members in Redis on the room's server (Room.shard_key), and each daphne's sockets there too."""

    def __init__(self, shards):
        self.shards = shards

    def join(self, room, socket, handle, holder):
        # The daphne's index in the same script, where it is on the room's server (a socket's keys
        # are, while a consumer handles it); else first: a socket in a room but not in the index
        # could never be swept.
        index_key, indexed = self._index(room, socket)
        if not indexed:
            self.shards.socket_client(index_key).pipeline().hset(index_key, socket, room.name).expire(
                index_key, settings.WEBSOCKET_LIFETIME).execute()
        joined = self._run(JOIN, room, [socket, handle, settings.WEBSOCKET_LIFETIME, holder, room.name],
                           index_key if indexed else None)
        if joined is None:
            if not indexed:
                self.shards.socket_client(index_key).hdel(index_key, socket)
            return None
        count, number, handles, signed_in = joined
        return count, number, [value.decode("utf-8") for value in handles], [value.decode("utf-8") for value in signed_in]

    def leave(self, room, socket):
        index_key, indexed = self._index(room, socket)
        left = self._run(LEAVE, room, [socket, room.name], index_key if indexed else None)
        if not indexed:
            self.shards.socket_client(index_key).hdel(index_key, socket)
        if left is None:
            return None
        handle, holder, count, number = left
        return handle.decode("utf-8"), holder.decode("utf-8"), count, number

    def handles(self, room):
        return [handle.decode("utf-8") for handle in self.shards.client(room.shard_key).hvals(room.key("members"))]

    def next_event(self, room):
        key = room.key("presence")
        return self.shards.client(room.shard_key).pipeline().incr(key).expire(
            key, settings.WEBSOCKET_LIFETIME).execute()[0]

    def sockets_of(self, daphne):
        """``[(room name, socket), ...]`` for the sockets a daphne had in rooms: its index is on
        every server that holds one of its sockets' rooms (a socket's keys live with its room's)."""
        key, layer = SOCKETS_PREFIX + daphne, self.shards.layer
        return [(room.decode("utf-8"), socket.decode("utf-8")) for index in range(layer.ring_size)
                for socket, room in layer.connection(index).hgetall(key).items()]

    def _index(self, room, socket):
        """The key of the socket's line in its daphne's index, and whether it is on the room's server."""
        key = SOCKETS_PREFIX + self.shards.layer.non_local_name(socket)
        layer = self.shards.layer
        return key, self.shards.socket_index(key) == layer.consistent_hash(room.shard_key)

    def _run(self, source, room, args, index_key=None):
        keys = [room.key("members"), room.key("presence"), room.key("names"), metrics.ROOMS]
        return self.shards.run(source, keys + ([index_key] if index_key else []), args, room.shard_key)


members = PerDeployment(LocalMembers, RedisMembers)
