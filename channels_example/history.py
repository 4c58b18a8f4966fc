"""Room history: every chat message numbered in its room, the latest kept for joiners, all stored.

What is promised (the argument is in docs/history.md):

* Every chat message gets ``seq``, its number in the room (1, 2, 3...), when it is
  delivered, in the order its socket sent it (``post`` queues it as one of the
  consumer's sends, which ``@in_order`` delivers in order).
* A client joining a room receives the room's last HISTORY_LENGTH messages in one
  history frame, before any live message, and then every later message once: no
  gap and no duplicate between the two. ``publish`` numbers a message, appends it to
  the room's recent list and *then* sends it to the Group; a joiner is added to the
  Group *before* ``history_frame`` reads the list. So each message is in the joiner's
  history, or reaches it live, or both; the layer's gate (channels_example.layers)
  removes the "both" and holds live messages until the history frame has passed.
* Every message is stored in the database (channels_example.models.Message) by the
  ``store_message`` consumer, off the delivery path: ``publish`` only sends it to the
  ``chat.history`` channel. ``store`` keeps HISTORY_RETENTION messages per room.

Numbering and the recent list live in Redis on the room's shard (one Lua script per
message) or, under runserver, in this process's memory. When Redis has lost them (or a
room was idle for HISTORY_IDLE_EXPIRY), numbering resumes after the database's last
stored message and joiners get their history from the database.
"""
import json
import logging
import threading
from collections import deque
from datetime import datetime, timezone

from channels import DEFAULT_CHANNEL_LAYER, Channel, Group, channel_layers
from channels.message import pending_message_store
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from channels_example import protocol, rooms
from channels_example.layers import HISTORY_UPTO_KEY, SEQ_KEY, gated

log = logging.getLogger(__name__)

STORE_CHANNEL = "chat.history"
# Messages a worker stores in one transaction when they are waiting (store_message).
STORE_BATCH = 100
KEY_PREFIX = "channels_example:room:"


def post(room, message):
    """Send a chat message (protocol.chat_message) to ``room`` from a consumer.

    Like ``Group.send`` inside a consumer it is sent when the consumer returns, or,
    under ``@in_order``, when the socket's earlier frames have been delivered; that is
    when ``publish`` numbers it.
    """
    RoomSender(room).send(message)


class RoomSender:
    """A room as the target of a send buffered in channels' pending message store."""

    kind = "room"

    def __init__(self, room):
        self.name = room

    @property
    def channel_layer(self):
        return channel_layers[DEFAULT_CHANNEL_LAYER]

    def send(self, message, immediately=False):
        if immediately or not pending_message_store.active:
            publish(self.name, message)
        else:
            pending_message_store.append(self, message)


def publish(room, message):
    """Number a chat message, add it to the room's recent list, deliver it to the room, and queue it for storing."""
    seq = recent().append(room, message)
    Group(rooms.group_name(room)).send(gated(protocol.chat(message, seq), SEQ_KEY, seq), immediately=True)
    stored = {"room": room, "seq": seq, "handle": message["handle"], "message": message["message"], "ts": message["ts"]}
    try:
        Channel(STORE_CHANNEL).send(stored, immediately=True)
    except channel_layers[DEFAULT_CHANNEL_LAYER].ChannelFull:
        log.error("message %d of room %r delivered but not stored: %s is full", seq, room, STORE_CHANNEL)
    return seq


def history_frame(room):
    """The history frame for a client joining ``room`` now. Call it after adding the client to the Group."""
    snapshot = recent().snapshot(room)
    if snapshot is None:
        snapshot = _stored_snapshot(room)
    messages, upto = snapshot
    return gated(protocol.history(room, messages, upto), HISTORY_UPTO_KEY, upto)


def store(*stored):
    """Save published messages (what ``publish`` sent to STORE_CHANNEL) in one transaction; prune now and then.

    Saving a message twice is harmless: (room, seq) is unique and a repeat is skipped.
    """
    from channels_example.models import Message

    with transaction.atomic():
        Message.objects.bulk_create([
            Message(room=item["room"], seq=item["seq"], handle=item["handle"], message=item["message"],
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


def _stored_snapshot(room):
    from channels_example.models import Message

    rows = Message.objects.filter(room=room).order_by("-seq")[:settings.HISTORY_LENGTH]
    messages = [_from_row(row) for row in reversed(rows)]
    return messages, (messages[-1]["seq"] if messages else 0)


def _from_row(row):
    message = protocol.chat_message(row.room, row.handle, row.message)
    message.update(ts=int(row.created.timestamp() * 1000), seq=row.seq)
    return message


def _stored_upto(room):
    from channels_example.models import Message

    return Message.objects.filter(room=room).aggregate(upto=Max("seq"))["upto"] or 0


class LocalRecent:
    """Numbering and recent lists in this process's memory: for runserver, whose threads share it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rooms = {}

    def append(self, room, message):
        with self._lock:
            if room not in self._rooms:
                self._rooms[room] = {"seq": _stored_upto(room), "recent": deque(maxlen=settings.HISTORY_LENGTH)}
            state = self._rooms[room]
            state["seq"] += 1
            state["recent"].append(dict(message, seq=state["seq"]))
            return state["seq"]

    def snapshot(self, room):
        """``(messages oldest first, upto)``, or None when this process has not numbered the room yet."""
        with self._lock:
            state = self._rooms.get(room)
            return (list(state["recent"]), state["seq"]) if state else None


# KEYS: the room's counter, its recent list. ARGV: message JSON without seq, history
# length, idle expiry (s), first number minus one when the counter is missing ('' = unknown).
# Returns the message's seq, or nil when the counter is missing and ARGV[4] is ''.
_APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[4] == '' then return nil end
  redis.call('SET', KEYS[1], ARGV[4])
end
local seq = redis.call('INCR', KEYS[1])
redis.call('LPUSH', KEYS[2], string.sub(ARGV[1], 1, -2) .. ', "seq": ' .. seq .. '}')
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return seq
"""

# KEYS: the room's counter, its recent list. Returns {counter, items newest first}, or nil.
_SNAPSHOT = """
local seq = redis.call('GET', KEYS[1])
if not seq then return nil end
return {seq, redis.call('LRANGE', KEYS[2], 0, -1)}
"""


class RedisRecent:
    """Numbering and recent lists in Redis, on the room's shard: for runworker on any host."""

    def _run(self, source, room, args):
        from channels_example import shards

        base = KEY_PREFIX + rooms.group_name(room)
        return shards.run_script(source, base, [base + ":seq", base + ":recent"], args)

    def append(self, room, message):
        text = json.dumps(message, ensure_ascii=False)
        args = [text, settings.HISTORY_LENGTH, settings.HISTORY_IDLE_EXPIRY]
        seq = self._run(_APPEND, room, args + [""])
        if seq is None:
            seq = self._run(_APPEND, room, args + [_stored_upto(room)])
        return seq

    def snapshot(self, room):
        """``(messages oldest first, upto)``, or None when Redis does not know the room."""
        found = self._run(_SNAPSHOT, room, [])
        if found is None:
            return None
        upto, items = found
        return [json.loads(item) for item in reversed(items)], int(upto)


_recent = None


def recent():
    """Where numbering and recent lists live for this deployment: Redis when REDIS_URL is set, else memory."""
    global _recent
    if _recent is None:
        _recent = RedisRecent() if settings.REDIS_HOSTS else LocalRecent()
    return _recent
