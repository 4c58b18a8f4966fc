"""Room history: every chat message numbered in its room, the latest kept for joiners, all stored.

What is promised (the argument is in docs/history.md):

* Every chat message gets ``seq``, its number in the room (1, 2, 3...), when it is
  delivered, in the order its socket sent it (``Room.send`` is buffered like
  ``Group.send``, and ``@in_order`` delivers a socket's sends in order).
* A client joining a room receives the room's last HISTORY_LENGTH messages in one
  history frame, before any live message, and then every later message once: no
  gap and no duplicate between the two. ``Room.publish`` numbers a message, appends it
  to the room's recent list (``append``) and *then* sends it to the Group; a joiner is
  added to the Group *before* ``history_frame`` reads the list. So each message is in
  the joiner's history, or reaches it live, or both; the layer's join gate
  (channels_example.layers.gate) removes the "both" and holds live messages until the
  history frame has passed.
* Every message is stored in the database (channels_example.models.Message) by the
  ``store_message`` consumer, off the delivery path: ``queue_for_storing`` only sends it
  to the ``chat.history`` channel. ``store`` keeps HISTORY_RETENTION messages per room.

Numbering and the recent list live in Redis on the room's shard (one Lua script per
message) or, under runserver, in this process's memory. When Redis has lost them (or a
room was idle for HISTORY_IDLE_EXPIRY), numbering resumes after the database's last
stored message and joiners get their history from the database.

Functions here take a ``Room`` (channels_example.chat.rooms), which names the room's
keys and its Group.
"""
import json
import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone
from types import SimpleNamespace

from channels import Channel
from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.db.models import Max

from channels_example.backends.shards import PerDeployment
from channels_example.chat import metrics, protocol
from channels_example.layers import gate
from channels_example.models import Message, ModerationAction

log = logging.getLogger(__name__)

# The join gate's name for a room's chat messages (gate_streams in settings.CHANNEL_LAYERS).
STREAM = "history"
STORE_CHANNEL = "chat.history"
# Messages a worker stores in one transaction when they are waiting (store_message).
STORE_BATCH = 100
# A message not stored after twice the layer's expiry never will be (it expired on
# chat.history, or its worker died): the recent list need not keep it for that.
UNSTORED_MS = 2 * 60 * 1000


def append(room, message, latency=None):
    """Number a chat message in its room and add it to the room's recent list; its ``seq``. Counted
    for the deployment's figures (chat.metrics), with ``latency``, seconds since daphne received it."""
    return recent().append(room, message, latency)


def queue_for_storing(room, seq, message):
    """Send a delivered message to STORE_CHANNEL, where a worker's ``store_message`` saves it."""
    stored = {field: message[field] for field in ("handle", "signed_in", "sender", "message", "ts")}
    stored.update(room=room.name, seq=seq)
    channel = Channel(STORE_CHANNEL)
    try:
        channel.send(stored, immediately=True)
    except channel.channel_layer.ChannelFull:
        log.error("message %d of room %r delivered but not stored: %s is full", seq, room.name, STORE_CHANNEL)


def forget(room, seq):
    """Delete message ``seq`` of the room from its recent history and the database (a moderator's
    deletion); False when the room has no such message."""
    known = recent().forget(room, seq)
    return bool(Message.objects.filter(room=room.name, seq=seq).delete()[0]) or known


def history_frame(room, since=None):
    """The history frame for a client joining ``room`` now. Call it after adding the client to the Group.

    Without ``since``: the room's last HISTORY_LENGTH messages. With ``since`` (the highest
    seq the client has shown): every message numbered above it, oldest first, at most the
    last RESUME_LIMIT, and ``complete`` saying whether that is all of them. A ``since``
    above the room's latest number (the client's room is not this one: Redis and the
    database lost it) gets the last HISTORY_LENGTH messages and ``complete`` false.
    """
    snapshot = recent().snapshot(room, since)
    messages, upto = snapshot if snapshot is not None else ([], _stored_upto(room))
    if since is None or since > upto:
        wanted = max(upto - settings.HISTORY_LENGTH, 0)
    else:
        wanted = max(since, upto - settings.RESUME_LIMIT)
    # What the recent list no longer holds comes from the database (read after it: a message
    # is trimmed from the list only once stored, so each is in one or the other).
    # The list is read by count: with deletions in the range, it reaches below ``wanted``.
    messages = [item for item in messages if item["seq"] > wanted]
    first = messages[0]["seq"] if messages else upto + 1
    if first > wanted + 1:
        rows = Message.objects.filter(room=room.name, seq__gt=wanted, seq__lt=first).order_by("seq")
        messages = [_from_row(row) for row in rows] + messages
    if since is None:
        frame = protocol.history(room.name, messages, upto)
    else:
        frame = protocol.history(room.name, messages, upto, since=since,
                                 complete=since <= upto and upto - since <= settings.RESUME_LIMIT)
    return gate.snapshot(room.channel_layer, frame, STREAM, upto)


def store(*stored):
    """Save delivered messages (what ``queue_for_storing`` sent) in one transaction; prune now and
    then. Returns the seqs handled, by room name, for ``stored``.

    Saving a message twice is harmless: (room, seq) is unique and a repeat is skipped. A
    message a moderator deleted before it was stored is not stored. If the database
    refuses a message (DataError, IntegrityError; psycopg2 refuses a NUL with ValueError
    before the database sees it), each message is saved on its own, so that the refused
    one (logged with its room and seq) never loses the others.
    """
    # Read before the transaction: in SQLite a transaction that reads and then writes can
    # meet another writer and fail at once with "database is locked", where a writing one waits.
    deleted = _deleted(stored)
    kept = [item for item in stored if (item["room"], item["seq"]) not in deleted]
    try:
        with transaction.atomic():
            _save(kept)
    except REFUSED:
        for item in kept:
            try:
                with transaction.atomic():
                    _save([item])
            except REFUSED as refused:
                log.error("message %s of room %r not stored: the database refused it: %s",
                          item["seq"], item["room"], refused)
    # A moderator may have deleted one of them while they were being stored.
    _delete_deleted(kept)
    by_room = {}
    for item in stored:
        by_room.setdefault(item["room"], []).append(item["seq"])
    return by_room


def stored(room, seqs):
    """These messages of the room are in the database (or never will be): its recent list may let them go."""
    recent().stored(room, seqs)


REFUSED = (DataError, IntegrityError, ValueError)


def _deleted(items):
    """The (room, seq) of these messages that a moderator deleted."""
    if not items:
        return set()
    return set(ModerationAction.objects.filter(
        action="delete", room__in={item["room"] for item in items}, seq__in={item["seq"] for item in items},
    ).values_list("room", "seq"))


def _delete_deleted(items):
    for room, seq in _deleted(items):
        Message.objects.filter(room=room, seq=seq).delete()


def _save(stored):
    Message.objects.bulk_create([
        Message(room=item["room"], seq=item["seq"], handle=item["handle"], signed_in=item.get("signed_in", False),
                sender=item.get("sender", ""), message=item["message"],
                created=datetime.fromtimestamp(item["ts"] / 1000, timezone.utc))
        for item in stored
    ], ignore_conflicts=True)
    for item in stored:
        if item["seq"] % settings.HISTORY_PRUNE_EVERY == 0:
            Message.objects.filter(room=item["room"], seq__lte=item["seq"] - settings.HISTORY_RETENTION).delete()


def waiting_to_be_stored(channel_layer, limit=STORE_BATCH):
    """Up to ``limit`` more messages already waiting on STORE_CHANNEL, taken without waiting:
    a worker that stores them together pays for one transaction instead of one each."""
    batch = []
    while len(batch) < limit:
        channel, content = channel_layer.receive([STORE_CHANNEL], block=False)
        if channel is None:
            break
        batch.append(content)
    return batch


def _from_row(row):
    speaker = SimpleNamespace(handle=row.handle, signed_in=row.signed_in, sender=row.sender)
    message = protocol.chat_message(row.room, speaker, row.message)
    message.update(ts=int(row.created.timestamp() * 1000), seq=row.seq)
    return message


def _stored_upto(room):
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
                self._rooms[room.name] = {"seq": _stored_upto(room), "recent": deque(), "unstored": {}}
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


class RedisRecent:
    """Numbering and recent lists in Redis, on the room's shard: for runworker on any host.

    A room has a counter, its recent list (newest first) and the set of its messages not yet
    stored: the list keeps the last HISTORY_LENGTH messages and every message not yet in the
    database, so that a message is always in one or the other (a resume reads both).
    """

    def __init__(self, shards):
        self.shards = shards
        self._unreplicated = {}  # shard -> until when its master is taken to have no replica

    def append(self, room, message, latency=None):
        text = json.dumps(message, ensure_ascii=False)
        args = [text, settings.HISTORY_LENGTH, settings.HISTORY_IDLE_EXPIRY, settings.RECENT_LIMIT]
        counted = ["" if latency is None else metrics.latency_bucket(latency), latency or 0, UNSTORED_MS]
        seq = self._append(room, args + [""] + counted)
        if seq is None:
            seq = self._append(room, args + [_stored_upto(room)] + counted)
        return seq

    def _append(self, room, args):
        keys = [room.key("seq"), room.key("recent"), room.key("unstored"), metrics.MESSAGES, metrics.LATENCY,
                metrics.LATENCY_SUM]
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

    # KEYS: the room's counter, its recent list, its unstored set, and the figures: messages,
    # the latency histogram and its sum (chat.metrics). ARGV: message JSON without seq, history
    # length, idle expiry (s), the list's most, first number minus one when the counter is
    # missing ('' = unknown), the latency's bucket ('' = none) and seconds, UNSTORED_MS. Returns the seq,
    # or nil when the counter is missing and ARGV[5] is ''. The list keeps every unstored
    # message and the last ARGV[2].
    lua_append = """
        if redis.call('EXISTS', KEYS[1]) == 0 then
          if ARGV[5] == '' then return nil end
          redis.call('SET', KEYS[1], ARGV[5])
        end
        local seq = redis.call('INCR', KEYS[1])
        redis.call('LPUSH', KEYS[2], string.sub(ARGV[1], 1, -2) .. ', "seq": ' .. seq .. '}')
        -- Unstored, scored by Redis's clock: one that waited longer than ARGV[8] ms has expired
        -- from the chat.history channel (a worker died with it) and will never be stored.
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        redis.call('ZADD', KEYS[3], now, seq)
        redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[8]))
        local oldest = tonumber(redis.call('ZRANGE', KEYS[3], 0, 0)[1] or seq)
        local keep = math.min(math.max(tonumber(ARGV[2]), seq - oldest + 1), tonumber(ARGV[4]))
        redis.call('LTRIM', KEYS[2], 0, keep - 1)
        for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
        redis.call('INCR', KEYS[4])
        if ARGV[6] ~= '' then
          redis.call('HINCRBY', KEYS[5], ARGV[6], 1)
          redis.call('INCRBYFLOAT', KEYS[6], ARGV[7])
        end
        return seq
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
