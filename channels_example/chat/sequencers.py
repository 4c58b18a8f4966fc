"""The sequencers behind @in_order (channels_example.chat.ordering): a socket's frames released in
order, and the sends of each made, one path per deployment.

A sequencer takes each completed frame of a socket, with its order and its sends, and makes the
sends of every frame now due, oldest first: a reorder buffer (channels_example.layers.reorder).
A frame's sends are ``[kind, name, content]``: ``room`` (a chat message, rooms.Room.send's
``{"message", "sender"}``), ``group`` or ``channel`` (a message to send as it is).

* **Redis** (runworker processes on any host, any Redis layer): ``RedisSequencer``. One Lua
  script per frame (lua/deliver.lua) parks it, takes every frame now due and, for each chat
  message, checks the mute, numbers it in its room, keeps it in the room's recent list, sends it
  to the room's Group and queues it for storing. It runs on the room's Redis server, where the
  socket's and the room's keys are. A script runs alone, so whichever worker finds a frame due
  delivers it. Where the sends are made:

  - with the project's layer on one server, inside the script, with the layer's own sends in
    Lua (``lua_sends()``): one round trip for all of it;
  - with any other layer (asgi_redis's own, several shards, encryption), or over Sentinel, where
    a number must reach a replica before the room sees it: the script keeps them
    (lua/collect.lua) and the worker makes them through the layer's API when it returns (after
    Redis's WAIT, over Sentinel). Two workers' sends may then cross on their way: each room
    message carries its ``seq``, and the join gate (or the page) puts them back in order.

* **Memory** (runserver's worker threads): ``LocalSequencer``, the same steps in Python, under a
  lease so that one thread at a time delivers a socket's frames.

Both pass one contract suite (tests/test_sequencers.py).
"""
import json
import logging
import threading
import time
import uuid
from typing import Protocol

import redis
from channels import Channel, Group
from django.conf import settings

from channels_example.chat import history, lua, metrics, moderation, protocol, recent
from channels_example.chat.rooms import Room
from channels_example.layers import gate
from channels_example.layers.reorder import ReorderBuffer

log = logging.getLogger(__name__)

KEY_PREFIX = "channels_example:order:"
CLOSING_KEY = KEY_PREFIX + "closing"


class Sequencer(Protocol):
    def complete(self, socket: str, order: int, sends: list, final: bool = False) -> None:
        """A frame of ``socket`` is done: make its sends in their turn (now, or when the frame before
        it completes). ``final``: it is the socket's disconnect, its last frame."""

    def deliver_now(self, sends: list) -> None:
        """Make these sends at once, in no socket's turn (a connect's, or a send outside a consumer)."""

    def next_order(self, socket: str) -> int:
        """The order of the socket's next frame not yet delivered."""

    def sweep(self) -> None:
        """Deliver the disconnects left parked behind a lost frame, once their gap is stale."""


# ------------------------------------------------------------------------------------------ memory

class LocalSequencer:
    """In this process's memory: for runserver, whose worker threads share it. One thread at a time
    delivers for a socket (a lease); the others park their frames and return."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets = {}  # socket -> {"buffer": ReorderBuffer, "lease": token or None, ...}
        self._closing = {}  # socket -> when its disconnect was parked

    def complete(self, socket, order, sends, final=False):
        token = uuid.uuid4().hex
        with self._lock:
            state = self._sockets.setdefault(socket, {"buffer": ReorderBuffer(1), "lease": None})
            late = not state["buffer"].push(order, sends, time.monotonic())
            if final:
                state["closed"], state["final"] = time.monotonic(), order
            batch = [] if late else self._take(state, token)
        if late:  # its turn was skipped (a gap went stale): delivered at once rather than lost
            self.deliver_now(sends)
        self._deliver_while_due(socket, state, token, batch)
        if final and not self._finished(state):
            with self._lock:
                self._closing[socket] = time.monotonic()

    def deliver_now(self, sends):
        for kind, name, content in sends:
            if kind == "room":
                publish(Room(name), content["message"], content["sender"])
            else:
                (Group if kind == "group" else Channel)(name).send(content, immediately=True)

    def next_order(self, socket):
        with self._lock:
            state = self._sockets.get(socket)
            return state["buffer"].next if state else 1

    def sweep(self):
        stale = time.monotonic() - settings.ORDERING_GAP_SECONDS
        with self._lock:
            due = [socket for socket, since in self._closing.items() if since < stale]
        for socket in due:
            token = uuid.uuid4().hex
            with self._lock:
                state = self._sockets.get(socket)
                batch = self._take(state, token) if state else []
            if state is not None:
                self._deliver_while_due(socket, state, token, batch)
            with self._lock:
                if state is None or self._finished(state):
                    self._closing.pop(socket, None)

    def _deliver_while_due(self, socket, state, token, batch):
        while batch:
            for sends in batch:
                self.deliver_now(sends)
            with self._lock:
                batch = self._take(state, token, holding=True)

    def _take(self, state, token, holding=False):
        """The frames due now, and the lease with them; none if another thread holds the lease."""
        now = time.monotonic()
        lease = state["lease"]
        if holding and (not lease or lease[0] != token):
            return []
        if not holding and lease and lease[1] > now:
            return []
        state["buffer"].gap_seconds = settings.ORDERING_GAP_SECONDS  # read when used, as in Redis
        batch = state["buffer"].pop_due(now)
        state["lease"] = (token, now + settings.ORDERING_LEASE_SECONDS) if batch else None
        if not batch:
            self._forget_closed(now)
        return batch

    @staticmethod
    def _finished(state):
        return state["buffer"].next > state.get("final", float("inf"))

    def _forget_closed(self, now):
        """Drop sockets closed so long ago that no straggling frame can still come."""
        gone = [socket for socket, state in self._sockets.items()
                if state.get("closed") and now - state["closed"] > settings.CHANNEL_MESSAGE_EXPIRY]
        for socket in gone:
            del self._sockets[socket]


def publish(room, message, sender=None):
    """runserver's steps for a chat message (deliver.lua's, in Python): refused if its sender's name
    is muted here, else numbered, kept, sent to the room's Group and queued for storing."""
    if sender:
        wait = moderation.muted_for(room, message["handle"])
        if wait:
            metrics.count_error("muted")
            Channel(sender).send(protocol.muted_error(wait), immediately=True)
            return
    message = dict(message)
    received_at = message.pop("received_at", None)
    seq = history.append(room, message, None if received_at is None else time.time() - received_at)
    room.group.send(gate.live(room.channel_layer, protocol.message_frame(message, seq), history.STREAM, seq),
                    immediately=True)


# ------------------------------------------------------------------------------------------- Redis

DELIVER = lua.source("deliver.lua")
COLLECT = lua.source("collect.lua")


class RedisSequencer:
    """A hash per socket, on its room's Redis server (``shards.socket_client``), and deliver.lua."""

    def __init__(self, shards):
        self.shards = shards
        offered = "lua_sends" in shards.layer.extensions and not settings.NUMBERING_REPLICAS
        layer_sends = shards.layer.lua_sends() if offered else None
        # The layer's sends in the script, or kept for the worker (collect.lua).
        self.library, self.library_config = layer_sends or (COLLECT, json.dumps({"tag": gate.TAG}))
        self.sends_in_script = layer_sends is not None
        self.source = self.library + DELIVER
        # The error frame for a muted sender, with the seconds left for the script to fill in.
        self.muted = protocol.error("muted", protocol.MUTED_DETAIL % "@WAIT@", retry_after="@RETRY@")["text"]
        self._unreplicated = {}  # shard -> until when its master is taken to have no replica

    def complete(self, socket, order, sends, final=False):
        self._run(socket, "claim", sends, order=order, final=final)

    def deliver_now(self, sends):
        self._run(None, "now", sends)

    def next_order(self, socket):
        value = self.shards.socket_client(keys_of(socket)).hget(keys_of(socket), "next")
        return int(value) if value is not None else 1

    def sweep(self):
        """Each server keeps the closing sockets whose keys it holds."""
        stale = _now_ms() - int(settings.ORDERING_GAP_SECONDS * 1000)
        layer = self.shards.layer
        for index in range(layer.ring_size):
            for socket in layer.connection(index).zrangebyscore(CLOSING_KEY, "-inf", stale):
                socket = socket.decode("utf-8")
                self._run(socket, "sweep", [], shard=index)
                next_due, final = layer.connection(index).hmget(KEY_PREFIX + socket, "next", "final")
                if next_due is None or final is None or int(next_due) > int(final):
                    layer.connection(index).zrem(CLOSING_KEY, socket)

    def _run(self, socket, mode, sends, order=0, final=False, shard=None):
        payload = json.dumps([self._encoded(send) for send in sends], ensure_ascii=False)
        home = next((send[1] for send in sends if send[0] == "room"), None)
        # The room's server: a consumer runs with its socket's keys there (rooms.socket_keys_with_room).
        client = self.shards.socket_client(keys_of(socket)) if shard is None else self.shards.layer.connection(shard)
        keys = [keys_of(socket), CLOSING_KEY, recent.QUEUE_KEY]
        base_key, base = "", ""
        while True:
            args = [self._context(socket, mode, order, final, base_key, base), payload, self.library_config]
            status, events, out, *rest = self._evaluate(client, keys, args, home)
            self._report(socket, events)
            self._send(out)
            if status != b"need_base":
                return
            # A room Redis does not number: the database's last number, and again. A frame that
            # was parked is in the hash again, first due; one late is sent again as it was.
            where, room = rest[0], Room(rest[1].decode("utf-8"))
            base_key, base = room.key("seq"), recent.stored_upto(room)
            if where == b"parked":
                mode = "sweep"

    def _context(self, socket, mode, order, final, base_key, base):
        return json.dumps({
            "mode": mode, "socket": socket or "", "order": order, "final": final, "now_ms": _now_ms(),
            "gap_ms": int(settings.ORDERING_GAP_SECONDS * 1000), "ttl": settings.WEBSOCKET_LIFETIME,
            "closed_ttl": settings.CHANNEL_MESSAGE_EXPIRY, "base_key": base_key, "base": str(base),
            "store_limit": settings.STORE_QUEUE_LIMIT, "stream": history.STREAM, "muted": self.muted,
            "history": {"length": settings.HISTORY_LENGTH, "idle_expiry": settings.HISTORY_IDLE_EXPIRY,
                        "most": settings.RECENT_LIMIT, "unstored_ms": recent.UNSTORED_MS},
            "metrics": {"messages": metrics.MESSAGES, "latency": metrics.LATENCY,
                        "latency_sum": metrics.LATENCY_SUM, "errors": metrics.ERRORS},
        })

    def _evaluate(self, client, keys, args, home):
        if not settings.NUMBERING_REPLICAS or home is None:
            return self.shards.run_on(client, self.source, keys, args)
        # Over Sentinel, a number reaches the room only once a replica has it: a failover promotes
        # a replica, and Redis replicates after answering, so a number only the old master had
        # would be given again, and the room's gates drop that message. WAIT counts the replicas
        # that have every write of the connection it is sent on: one pipeline with the script. A
        # master with no replica (after a failover, until the old one is back) is not waited on.
        shard = self.shards.layer.consistent_hash(Room(home).shard_key)
        if time.monotonic() < self._unreplicated.get(shard, 0):
            return self.shards.run_on(client, self.source, keys, args)
        result, replicas = self.shards.run_then_wait(client, self.source, keys, args, settings.NUMBERING_REPLICAS,
                                                     settings.NUMBERING_REPLICA_WAIT_MS)
        if replicas < settings.NUMBERING_REPLICAS:
            log.warning("Redis shard %d: no replica took room %r's numbers within %d ms; not waiting on replicas "
                        "there for %d s", shard, home, settings.NUMBERING_REPLICA_WAIT_MS,
                        settings.NUMBERING_NO_REPLICA_SECONDS)
            self._unreplicated[shard] = time.monotonic() + settings.NUMBERING_NO_REPLICA_SECONDS
        return result

    def _encoded(self, send):
        kind, name, content = send
        if kind != "room":
            return send
        room, message = Room(name), dict(content["message"])
        received_at = message.pop("received_at", None)
        latency = None if received_at is None else time.time() - received_at
        stored = {field: message[field] for field in ("handle", "signed_in", "sender", "message", "ts")}
        return ["room", room.name, {
            "text": json.dumps(message, ensure_ascii=False), "handle": message["handle"],
            "sender": content["sender"] or "", "room": room.name, "group": room.group_name,
            "keys": {part: room.key(part) for part in ("seq", "recent", "unstored", "muted")},
            "stored": dict(stored, room=room.name),
            "bucket": "" if latency is None else metrics.latency_bucket(latency), "latency": latency or 0,
        }]

    def _send(self, out):
        """The sends the script kept (collect.lua), made through the layer's API, in order."""
        layer = self.shards.layer
        for kind, name, content in json.loads(out) or []:
            if gate.GATE not in layer.extensions:
                content.pop(gate.TAG, None)
            try:
                (Group if kind == "group" else Channel)(name).send(content, immediately=True)
            except (layer.ChannelFull, redis.exceptions.ConnectionError) as error:
                self._dropped(1)
                log.warning("dropped a message to %s %s: %s", kind, name, type(error).__name__)

    def _report(self, socket, events):
        for event in json.loads(events) or []:
            what, *details = event.split(" ", 2)
            if what in ("dropped", "full"):
                self._dropped(int(details[0]) if what == "dropped" else 1)
            if what == "dropped":
                log.warning("dropped a message to group %s for %s members: the channel of their daphne is full",
                            details[1], details[0])
            elif what == "full":
                log.warning("dropped a frame for %s from %s: its channel is full", details[0], socket)
            elif what == "unstored":
                log.error("message %s of room %r delivered but not stored: the store queue is full",
                          details[0], details[1])


    def _dropped(self, count):
        """Counted where the layer counts (the project's layers); asgi_redis's own drops silently."""
        if hasattr(self.shards.layer, "dropped"):
            self.shards.layer.dropped += count


def keys_of(socket):
    """The key of a socket's ordering state (a "now" delivery has none, and names no socket)."""
    return KEY_PREFIX + (socket or "none")


def _now_ms():
    return int(time.time() * 1000)
