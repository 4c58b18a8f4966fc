"""Each room's numbering and recent messages, in Redis on the room's server or in this process's memory.

The stores behind channels_example.chat.history, which says what they promise. A room has
a counter, its recent list (newest first) and the set of its messages not yet stored: the
list keeps the last HISTORY_LENGTH messages and every message not yet in the database, so
that a message is always in one or the other (a resume reads both). When Redis has lost
a room's counter (or the room was idle for HISTORY_IDLE_EXPIRY), numbering resumes after
the database's last stored message.

``LUA_APPEND`` is the step that numbers a message, as a Lua function: RedisRecent runs it
on its own, and the scripted delivery (channels_example.chat.scripted) inside the script
that delivers a frame.
"""
import json
import logging
import threading
import time
from collections import deque

from django.conf import settings
from django.db.models import Max

from channels_example.backends.shards import PerDeployment
from channels_example.chat import metrics
from channels_example.models import Message

log = logging.getLogger(__name__)

# A message not stored after twice the layer's expiry never will be (it expired on
# chat.history, or its worker died): the recent list need not keep it for that.
UNSTORED_MS = 2 * 60 * 1000


def stored_upto(room):
    """The highest seq the database holds for the room (0 for none)."""
    return Message.objects.filter(room=room.name).aggregate(upto=Max("seq"))["upto"] or 0


class LocalRecent:
    """Numbering and recent lists in this process's memory: for runserver, whose threads share it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rooms = {}

    def append(self, room, message, latency=None):
        metrics.counters().message(room.name, latency)
        with self._lock:
            if room.name not in self._rooms:
                self._rooms[room.name] = {"seq": stored_upto(room), "recent": deque(), "unstored": {}}
            state = self._rooms[room.name]
            state["seq"] += 1
            state["recent"].append(dict(message, seq=state["seq"]))
            state["unstored"][state["seq"]] = time.monotonic()
            self._trim(state)
            return state["seq"]

    def snapshot(self, room, since=None):
        """``(messages oldest first, upto)``: the last HISTORY_LENGTH, or those numbered above
        ``since`` (the last RESUME_LIMIT at most) that the list holds; None when this process has
        not numbered the room yet."""
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


# ``history_append(keys, text, length, idle_expiry, most, base, bucket, latency, unstored_ms)``:
# number a message and keep it. ``keys``: the room's counter, its recent list, its unstored
# set, and the figures: messages, the latency histogram and its sum (chat.metrics). ``text``:
# the message's JSON without seq (the item kept is it with ``, "seq": N}`` at its end);
# ``length``: HISTORY_LENGTH; ``idle_expiry`` (s); ``most``: the list's most; ``base``: the
# first number minus one when the counter is missing ('' = unknown); ``bucket``: the
# latency's bucket ('' = none) and ``latency`` its seconds; ``unstored_ms``: UNSTORED_MS.
# Returns the seq, or nil when the counter is missing and ``base`` is ''. The list keeps
# every unstored message and the last ``length``.
LUA_APPEND = """
    local function history_append(k, text, length, idle_expiry, most, base, bucket, latency, unstored_ms)
      if redis.call('EXISTS', k[1]) == 0 then
        if base == '' then return nil end
        redis.call('SET', k[1], base)
      end
      local seq = redis.call('INCR', k[1])
      redis.call('LPUSH', k[2], string.sub(text, 1, -2) .. ', "seq": ' .. seq .. '}')
      -- Unstored, scored by Redis's clock: one that waited longer than unstored_ms has expired
      -- from the chat.history channel (a worker died with it) and will never be stored.
      local time = redis.call('TIME')
      local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
      redis.call('ZADD', k[3], now, seq)
      redis.call('ZREMRANGEBYSCORE', k[3], '-inf', now - tonumber(unstored_ms))
      local oldest = tonumber(redis.call('ZRANGE', k[3], 0, 0)[1] or seq)
      local keep = math.min(math.max(tonumber(length), seq - oldest + 1), tonumber(most))
      redis.call('LTRIM', k[2], 0, keep - 1)
      for i = 1, 3 do redis.call('EXPIRE', k[i], idle_expiry) end
      redis.call('INCR', k[4])
      if bucket ~= '' then
        redis.call('HINCRBY', k[5], bucket, 1)
        redis.call('INCRBYFLOAT', k[6], latency)
      end
      return seq
    end
"""


def append_keys(room):
    """The keys ``history_append`` (LUA_APPEND) takes, for ``room``."""
    return [room.key("seq"), room.key("recent"), room.key("unstored"), metrics.MESSAGES, metrics.LATENCY,
            metrics.LATENCY_SUM]


def append_args(text, latency=None, base=""):
    """The arguments after ``keys`` that ``history_append`` takes, in its order."""
    return [text, settings.HISTORY_LENGTH, settings.HISTORY_IDLE_EXPIRY, settings.RECENT_LIMIT, base,
            "" if latency is None else metrics.latency_bucket(latency), latency or 0, UNSTORED_MS]


class RedisRecent:
    """Numbering and recent lists in Redis, on the room's server (Room.shard_key): for runworker on any host."""

    def __init__(self, shards):
        self.shards = shards
        self._unreplicated = {}  # shard -> until when its master is taken to have no replica

    def append(self, room, message, latency=None):
        text = json.dumps(message, ensure_ascii=False)
        seq = self._append(room, append_args(text, latency))
        if seq is None:
            seq = self._append(room, append_args(text, latency, stored_upto(room)))
        return seq

    def _append(self, room, args):
        keys = append_keys(room)
        if not settings.NUMBERING_REPLICAS:
            return self.shards.run(self.lua_append, keys, args, room.shard_key)
        # Over Sentinel, a number reaches the room only once a replica has it: a failover
        # promotes a replica, and Redis replicates after answering, so a number only the
        # old master had would be given again, and the room's gates drop that message.
        # A master with no replica (after a failover, until the old one is back) has nothing
        # to fail over to: it is not waited on, and asked again every few seconds.
        shard = self.shards.layer.consistent_hash(room.shard_key)
        if time.monotonic() < self._unreplicated.get(shard, 0):
            return self.shards.run(self.lua_append, keys, args, room.shard_key)
        seq, replicas = self.shards.run_replicated(self.lua_append, keys, args, settings.NUMBERING_REPLICAS,
                                                   settings.NUMBERING_REPLICA_WAIT_MS, room.shard_key)
        if replicas < settings.NUMBERING_REPLICAS:
            log.warning("Redis shard %d: no replica took message %d of room %r within %d ms; not waiting on "
                        "replicas there for %d s", shard, seq or 0, room.name, settings.NUMBERING_REPLICA_WAIT_MS,
                        settings.NUMBERING_NO_REPLICA_SECONDS)
            self._unreplicated[shard] = time.monotonic() + settings.NUMBERING_NO_REPLICA_SECONDS
        return seq

    def snapshot(self, room, since=None):
        """As LocalRecent.snapshot, or None when Redis does not know the room."""
        args = ["" if since is None else since, settings.HISTORY_LENGTH, settings.RESUME_LIMIT]
        found = self._run(self.lua_snapshot, room, args)
        if found is None:
            return None
        upto, items = found
        return [json.loads(item) for item in reversed(items)], int(upto)

    def stored(self, room, seqs):
        self._run(self.lua_stored, room, [settings.HISTORY_LENGTH] + list(seqs))

    def forget(self, room, seq):
        return bool(self._run(self.lua_forget, room, [', "seq": %d}' % seq]))

    def _run(self, source, room, args):
        return self.shards.run(source, [room.key("seq"), room.key("recent"), room.key("unstored")], args,
                               room.shard_key)

    lua_append = LUA_APPEND + """
        return history_append(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
    """

    # KEYS: as for lua_append. ARGV: history length, then the seqs now stored. The list may then
    # let them go.
    lua_stored = """
        for i = 2, #ARGV do redis.call('ZREM', KEYS[3], ARGV[i]) end
        local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
        local oldest = tonumber(redis.call('ZRANGE', KEYS[3], 0, 0)[1] or seq + 1)
        local keep = math.max(tonumber(ARGV[1]), seq - oldest + 1)
        redis.call('LTRIM', KEYS[2], 0, keep - 1)
        return 1
    """

    # KEYS: as for lua_append. ARGV: the end of the item to remove (its seq, as lua_append wrote
    # it). Returns 1 if an item was removed.
    lua_forget = """
        for _, item in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
          if string.sub(item, -#ARGV[1]) == ARGV[1] then
            redis.call('LREM', KEYS[2], 1, item)
            return 1
          end
        end
        return 0
    """

    # KEYS: as for lua_append. ARGV: since ('' for a join), history length, resume limit.
    # Returns {counter, the wanted items newest first} (see _count), or nil.
    lua_snapshot = """
        local seq = redis.call('GET', KEYS[1])
        if not seq then return nil end
        local count = tonumber(ARGV[2])
        if ARGV[1] ~= '' and tonumber(ARGV[1]) <= tonumber(seq) then
          count = math.min(tonumber(seq) - tonumber(ARGV[1]), tonumber(ARGV[3]))
        end
        if count == 0 then return {seq, {}} end
        return {seq, redis.call('LRANGE', KEYS[2], 0, count - 1)}
    """


recent = PerDeployment(LocalRecent, RedisRecent)
