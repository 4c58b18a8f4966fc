"""Each room's numbering and recent messages, and the messages waiting to be stored: in Redis on the
room's server, or in this process's memory under runserver.

The stores behind channels_example.chat.history, which says what they promise. A room has a
counter, its recent list (newest first) and the set of its messages not yet stored: the list
keeps the last HISTORY_LENGTH messages and every message not yet in the database, so that a
message is always in one or the other (a resume reads both). When Redis has lost a room's
counter (or the room was idle for HISTORY_IDLE_EXPIRY), numbering resumes after the database's
last stored message. Each delivered message also waits in a queue until the clock's next
``chat.store`` takes it to the database: a list on each Redis server (its rooms'), bounded by
STORE_QUEUE_LIMIT.

On Redis a message is numbered and kept by the delivery script (lua/deliver.lua, which is
where ``append`` happens there); under runserver by ``LocalRecent.append``.
"""
import json
import logging
import threading
import time
from collections import deque
from typing import Protocol

import redis
from django.conf import settings
from django.db.models import Max

from channels_example.backends.shards import PerDeployment
from channels_example.chat import lua, metrics
from channels_example.models import Message

log = logging.getLogger(__name__)

QUEUE_KEY = "channels_example:store-queue"
# A message not stored after twice the layer's expiry never will be (its worker died with it):
# the recent list need not keep it for that.
UNSTORED_MS = 2 * 60 * 1000


def stored_upto(room):
    """The highest seq the database holds for the room (0 for none)."""
    return Message.objects.filter(room=room.name).aggregate(upto=Max("seq"))["upto"] or 0


class Recent(Protocol):
    def snapshot(self, room, since=None):
        """``(messages oldest first, upto)``: the last HISTORY_LENGTH, or those numbered above ``since``
        (the last RESUME_LIMIT at most) that the store holds; None when it does not know the room."""

    def stored(self, room, seqs):
        """These messages of the room are in the database (or never will be): the list may let them go."""

    def forget(self, room, seq):
        """Remove message ``seq`` from the room's recent list; whether it was there."""

    def take(self, limit):
        """Up to ``limit`` delivered messages waiting to be stored, oldest first, taken off the queue."""

    def waiting(self):
        """How many delivered messages wait to be stored."""


class LocalRecent:
    """Numbering and recent lists in this process's memory: for runserver, whose threads share it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rooms = {}
        self._queue = deque()

    def append(self, room, message, latency=None):
        """Number a chat message, keep it, and queue it for storing: its seq (deliver.lua on Redis)."""
        metrics.counters().message(room.name, latency)
        with self._lock:
            if room.name not in self._rooms:
                self._rooms[room.name] = {"seq": stored_upto(room), "recent": deque(), "unstored": {}}
            state = self._rooms[room.name]
            state["seq"] += 1
            state["recent"].append(dict(message, seq=state["seq"]))
            state["unstored"][state["seq"]] = time.monotonic()
            self._trim(state)
            stored = {field: message[field] for field in ("handle", "signed_in", "sender", "message", "ts")}
            if len(self._queue) < settings.STORE_QUEUE_LIMIT:
                self._queue.append(dict(stored, room=room.name, seq=state["seq"]))
            return state["seq"]

    def snapshot(self, room, since=None):
        with self._lock:
            state = self._rooms.get(room.name)
            if state is None:
                return None
            count = _count(since, state["seq"])
            return list(state["recent"])[-count:] if count else [], state["seq"]

    def stored(self, room, seqs):
        with self._lock:
            state = self._rooms.get(room.name)
            if state is not None:
                for seq in seqs:
                    state["unstored"].pop(seq, None)
                self._trim(state)

    def forget(self, room, seq):
        with self._lock:
            state = self._rooms.get(room.name)
            kept = [item for item in state["recent"] if item["seq"] != seq] if state else []
            if state is None or len(kept) == len(state["recent"]):
                return False
            state["recent"].clear()
            state["recent"].extend(kept)
            return True

    def take(self, limit):
        with self._lock:
            return [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]

    def waiting(self):
        with self._lock:
            return len(self._queue)

    @staticmethod
    def _trim(state):
        given_up = time.monotonic() - UNSTORED_MS / 1000
        for seq in [seq for seq, since in state["unstored"].items() if since < given_up]:
            del state["unstored"][seq]
        keep_from = min(min(state["unstored"], default=state["seq"]), state["seq"] - settings.HISTORY_LENGTH + 1)
        while state["recent"] and state["recent"][0]["seq"] < keep_from:
            state["recent"].popleft()


def _count(since, upto):
    """How many of the newest messages a snapshot wants."""
    if since is None or since > upto:
        return settings.HISTORY_LENGTH
    return min(upto - since, settings.RESUME_LIMIT)


SNAPSHOT, STORED, FORGET, TAKE = (lua.source(name) for name in ("snapshot.lua", "stored.lua", "forget.lua",
                                                                 "take.lua"))


class RedisRecent:
    """Recent lists in Redis, on the room's server (Room.shard_key): for runworker on any host."""

    def __init__(self, shards):
        self.shards = shards

    def snapshot(self, room, since=None):
        args = ["" if since is None else since, settings.HISTORY_LENGTH, settings.RESUME_LIMIT]
        found = self.shards.run(SNAPSHOT, [room.key("seq"), room.key("recent")], args, room.shard_key)
        if found is None:
            return None
        upto, items = found
        return [json.loads(item) for item in reversed(items)], int(upto)

    def stored(self, room, seqs):
        self.shards.run(STORED, [room.key("seq"), room.key("recent"), room.key("unstored")],
                        [settings.HISTORY_LENGTH] + list(seqs), room.shard_key)

    def forget(self, room, seq):
        return bool(self.shards.run(FORGET, [room.key("recent")], [', "seq": %d}' % seq], room.shard_key))

    def take(self, limit):
        """From each server's queue in turn, until ``limit``; a server that is down waits for the next time."""
        layer, taken = self.shards.layer, []
        for index in range(layer.ring_size):
            if len(taken) < limit:
                try:
                    items = self.shards.run_on(layer.connection(index), TAKE, [QUEUE_KEY], [limit - len(taken)])
                except redis.exceptions.ConnectionError as error:
                    log.warning("cannot take the messages waiting to be stored on Redis shard %d: %s", index, error)
                    continue
                taken += [json.loads(item) for item in items]
        return taken

    def waiting(self):
        layer = self.shards.layer
        return sum(layer.connection(index).llen(QUEUE_KEY) for index in range(layer.ring_size))


recent = PerDeployment(LocalRecent, RedisRecent)
