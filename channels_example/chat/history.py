"""Room history: every chat message numbered in its room, the latest kept for joiners, all stored.

What is promised (the argument is in docs/history.md):

* Every chat message gets ``seq``, its number in the room (1, 2, 3...), when it is
  delivered, in the order its socket sent it (``Room.send`` is buffered like
  ``Group.send``, and ``@in_order`` delivers a socket's sends in order).
* A client joining a room receives the room's last HISTORY_LENGTH messages in one
  history frame, before any live message, and then every later message once: no
  gap and no duplicate between the two. A message is numbered and appended to the
  room's recent list *then* sent to the Group (channels_example.chat.sequencers); a
  joiner is added to the Group *before* ``history_frame`` reads the list. So each
  message is in the joiner's history, or reaches it live, or both; the layer's join
  gate (channels_example.layers.gate) removes the "both" and holds live messages until
  the history frame has passed. (On a layer without the gate, asgi_redis's own, the
  page drops what it already shows, by ``seq``.)
* Every message is stored in the database (channels_example.models.Message), off the
  delivery path: it waits in the store queue (chat.recent) until the ``store_messages``
  consumer, on the timed channel ``chat.store`` the clock sends each STORE_INTERVAL,
  stores what waits in batches (``batches_to_store``). ``store`` keeps
  HISTORY_RETENTION messages per room.

Numbering, the recent list and the queue live in Redis on the room's server (the delivery
script) or, under runserver, in this process's memory (channels_example.chat.recent).
When Redis has lost them (or a room was idle for HISTORY_IDLE_EXPIRY), numbering resumes
after the database's last stored message and joiners get their history from the database.

Functions here take a ``Room`` (channels_example.chat.rooms), which names the room's
keys and its Group.
"""
import logging
from datetime import datetime, timezone
from types import SimpleNamespace

from django.conf import settings
from django.db import DataError, IntegrityError, transaction

from channels_example.chat import protocol
from channels_example.chat.recent import recent, stored_upto
from channels_example.layers import gate
from channels_example.models import Message, ModerationAction

log = logging.getLogger(__name__)

# The join gate's name for a room's chat messages (gate_streams in settings.CHANNEL_LAYERS).
STREAM = "history"
# Messages stored in one transaction, and batches stored per chat.store (store_messages): the
# rest waits for the next one. 10 batches every STORE_INTERVAL (0.2 s) is 5,000 messages a
# second for each clock.
STORE_BATCH = 100
STORE_BATCHES = 10


def append(room, message, latency=None):
    """runserver: number a chat message in its room, add it to the room's recent list and queue it for
    storing; its ``seq``. Counted for the deployment's figures (chat.metrics), with ``latency``,
    seconds since daphne received it. (On Redis the delivery script does it: lua/deliver.lua.)"""
    return recent().append(room, message, latency)


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
    messages, upto = snapshot if snapshot is not None else ([], stored_upto(room))
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
    """Save delivered messages (what the store queue held) in one transaction; prune now and
    then. Returns the seqs handled, by room name, for ``stored``.

    Saving a message twice is harmless: (room, seq) is unique and a repeat is skipped. A
    message a moderator deleted before it was stored is not kept. If the database
    refuses a message (DataError, IntegrityError; psycopg2 refuses a NUL with ValueError
    before the database sees it), each message is saved on its own, so that the refused
    one (logged with its room and seq) never loses the others.
    """
    try:
        with transaction.atomic():
            _save(stored)
    except REFUSED:
        for item in stored:
            try:
                with transaction.atomic():
                    _save([item])
            except REFUSED as refused:
                log.error("message %s of room %r not stored: the database refused it: %s",
                          item["seq"], item["room"], refused)
    # Deleted by a moderator before or while they were being stored: removed again. Once, after
    # the commit, is enough: moderation.apply records a deletion before it removes the message,
    # so a record this misses came after the commit, and its removal finds the row. (After the
    # transaction, not in it: in SQLite a transaction that reads and then writes can meet another
    # writer and fail at once with "database is locked", where a writing one waits.)
    _delete_deleted(stored)
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


def batches_to_store():
    """The messages waiting in the store queue, taken STORE_BATCH at a time as each batch is wanted,
    at most STORE_BATCHES batches: stored together they cost one transaction instead of one each."""
    for _ in range(STORE_BATCHES):
        batch = recent().take(STORE_BATCH)
        if batch:
            yield batch
        if len(batch) < STORE_BATCH:
            return


def _from_row(row):
    speaker = SimpleNamespace(handle=row.handle, signed_in=row.signed_in, sender=row.sender)
    message = protocol.chat_message(row.room, speaker, row.message)
    message.update(ts=int(row.created.timestamp() * 1000), seq=row.seq)
    return message
