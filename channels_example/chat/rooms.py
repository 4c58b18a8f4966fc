"""Rooms: which URL paths name a chat room, and ``Room``, which a consumer uses as the 1.x docs use a Group.

``Room(name).send(message)`` is ``Group("chat-%s" % name).send(...)`` for a chat
message: buffered until the consumer returns, like any send, and then (by @in_order and
the deployment's sequencer, channels_example.chat.sequencers) numbered in the room, kept
for joiners and stored (channels_example.chat.history), and sent to the room's Group. ``join`` and ``leave`` add the room's members (channels_example.chat.presence)
to ``add`` and ``discard``. A room's Group name, the prefix of its keys in Redis and the
server they live on (with its Group's, when the layer is sharded) are decided here and
nowhere else.

A room is the WebSocket path without its slashes: ``/lobby/`` is the room
``lobby``, ``/聊天室/`` the room ``聊天室``, and ``/`` the DEFAULT_ROOM. A room name
is NFC-normalised, and is one path segment of 1 to settings.MAX_ROOM_LENGTH characters
with a visible character, no control or format character and no leading or trailing
whitespace; anything else is refused.

Group names must be ASCII ``[A-Za-z0-9._-]`` and shorter than 100 characters, so
``group_name`` maps rooms onto them. It is injective: readable rooms map to
themselves (``chat-lobby``); every other room maps to an ASCII slug, a dot and 80
bits of its SHA-256 (``chat-cafe.k2x...``). The dot never occurs in the first form,
so the two forms cannot meet, and two rooms of the second form share a group only
if their digests collide.
"""
import base64
import functools
import hashlib
import re
import unicodedata

from channels import Group
from channels.message import pending_message_store
from django.conf import settings

from channels_example.backends.shards import socket_keys_on
from channels_example.chat import history, presence, protocol
from channels_example.chat.protocol import ProtocolError

DEFAULT_ROOM = "lobby"

GROUP_PREFIX = "chat-"
KEY_PREFIX = "channels_example:room:"
_READABLE_ROOM = re.compile(r"[A-Za-z0-9_-]{1,80}\Z")
_NOT_SLUG = re.compile(r"[^A-Za-z0-9_-]+")
_SLUG_LENGTH = 40


class InvalidRoom(ProtocolError):
    """The path cannot name a room; the detail says why."""

    def __init__(self, detail):
        super().__init__("invalid_room", detail)


def room_from_path(path):
    """Return the room named by a WebSocket path, NFC-normalised (``/café/`` is one room however
    it was typed), or raise InvalidRoom."""
    name = unicodedata.normalize("NFC", path.strip("/"))
    if not name:
        return DEFAULT_ROOM
    if "/" in name:
        raise InvalidRoom("a room name is one path segment, not %r" % name)
    if len(name) > settings.MAX_ROOM_LENGTH:
        raise InvalidRoom("a room name has at most %d characters, not %d" % (settings.MAX_ROOM_LENGTH, len(name)))
    refused = next((char for char in name if protocol.not_in_a_name(char)), None)
    if refused is not None:
        raise InvalidRoom("a room name cannot contain %s" % protocol.describe_char(refused))
    if name != name.strip():
        raise InvalidRoom("a room name cannot start or end with whitespace")
    if not any(protocol.visible(char) for char in name):
        raise InvalidRoom("a room name needs at least one visible character")
    return name


def group_name(room):
    """Return the channel-layer Group name for a valid room (see the module docstring)."""
    if _READABLE_ROOM.match(room):
        return GROUP_PREFIX + room
    ascii_room = unicodedata.normalize("NFKD", room).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_room).strip("-")[:_SLUG_LENGTH]
    digest = hashlib.sha256(room.encode("utf-8")).digest()[:10]
    return "%s%s.%s" % (GROUP_PREFIX, slug, base64.b32encode(digest).decode("ascii").lower())


class Room:
    """A chat room: its Group, its keys, and what its members send and receive."""

    def __init__(self, name):
        self.name = name
        self.group_name = group_name(name)

    @property
    def group(self):
        """The room's Group, on the default channel layer as it is now."""
        return Group(self.group_name)

    @classmethod
    def from_path(cls, path):
        """The room a WebSocket path names; raises InvalidRoom."""
        return cls(room_from_path(path))

    @property
    def channel_layer(self):
        return self.group.channel_layer

    def key(self, part):
        """The name of one of the room's keys in Redis."""
        return "%s%s:%s" % (KEY_PREFIX, self.group_name, part)

    @property
    def shard_key(self):
        """What places every key of the room on one Redis server: its Group's name, so that the
        room's keys live with its Group's members (channels_example.backends.shards)."""
        return self.group_name

    def join(self, reply_channel, speaker, since=None):
        """Add a socket to the room: ``(welcome, history, joined)``, the frames to send it and the room.

        Member first, then the snapshots: what the room receives from now on reaches the
        socket live, and what it received before is in them (docs/history.md). Send the
        two frames to the socket after its accept, then ``joined`` to the room. ``since``: the
        highest seq a reconnecting client has shown (history.history_frame). Raises
        ProtocolError, the socket out of the room again, when its name is someone else's here.
        """
        self.group.add(reply_channel)
        try:
            welcome, joined = presence.join(self, _name(reply_channel), speaker)
        except ProtocolError:
            self.group.discard(reply_channel)
            raise
        return welcome, history.history_frame(self, since), joined

    def leave(self, reply_channel):
        """Remove a socket from the room, and tell the room."""
        self.group.discard(reply_channel)
        left = presence.leave(self, _name(reply_channel))
        if left is not None:
            self.group.send(left)

    def send(self, message, sender=None):
        """Send a chat message (protocol.chat_message) to the room when the consumer returns, as a
        Group's send is; @in_order (channels_example.chat.ordering) takes it from channels' buffer and
        delivers it in the socket's order.

        ``sender``: the reply channel of the socket that wrote it, which is told instead if a
        moderator has muted its name here by the time the message is delivered.
        """
        if not pending_message_store.active:
            raise RuntimeError("Room.send is buffered until its consumer returns: call it in a consumer")
        pending_message_store.append(_Sent(self), {"message": message, "sender": sender})


def socket_keys_with_room(consumer):
    """Keep the socket's own keys (session, ordering, its daphne's index) on its room's Redis
    server while the consumer runs: then a shard that fails stops only its own rooms' sockets.

    Wrap a WebSocket consumer, outside every other decorator; the room is the one its
    ``path`` names (none for a path that names no room).
    """

    @functools.wraps(consumer)
    def inner(message, *args, **kwargs):
        with socket_keys_with_path(message.content.get("path", "")):
            return consumer(message, *args, **kwargs)

    return inner


def socket_keys_with_path(path):
    """``socket_keys_on`` the server of the room a WebSocket path names (none: where keys hash)."""
    return socket_keys_on(shard_key_of_path(path))


def shard_key_of_path(path):
    """The shard key of the room a WebSocket path names, or None (daphne puts it in each of the socket's
    messages: channels_example.interface.frames)."""
    try:
        return Room.from_path(path).shard_key
    except InvalidRoom:
        return None


class _Sent:
    """A chat message a consumer sent to a room, as channels buffers it until the consumer returns:
    ``kind`` and ``name`` for @in_order (channels_example.chat.ordering), which takes it out."""

    kind = "room"

    def __init__(self, room):
        self.room, self.name = room, room.name

    def send(self, sent, immediately=True):
        raise RuntimeError("a message to room %r is delivered by @in_order, which this consumer lacks" % self.name)


def _name(channel):
    """A reply channel's name, given the channel (as a consumer has it) or its name (as a sweep has it)."""
    return getattr(channel, "name", channel)


def store(*delivered):
    """Store delivered messages (history.store), then let the rooms' recent lists forget them."""
    for name, seqs in history.store(*delivered).items():
        history.stored(Room(name), seqs)


def sweep():
    """Remove from their rooms the sockets of daphnes that died without disconnecting them."""
    for daphne, sockets in presence.dead_daphnes():
        for name, socket in sockets:
            room = Room(name)
            with socket_keys_on(room.shard_key):
                room.leave(socket)
        presence.forget_daphne(daphne, len(sockets))
