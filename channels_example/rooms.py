"""Rooms: which URL paths name a chat room, and the Group each room uses.

A room is the WebSocket path without its slashes: ``/lobby/`` is the room
``lobby``, ``/聊天室/`` the room ``聊天室``, and ``/`` the DEFAULT_ROOM. A room name
is one path segment of 1 to MAX_ROOM_LENGTH characters with no control or format
characters and no leading or trailing whitespace; anything else is refused.

Group names must be ASCII ``[A-Za-z0-9._-]`` and shorter than 100 characters, so
``group_name`` maps rooms onto them. It is injective: readable rooms map to
themselves (``chat-lobby``); every other room maps to an ASCII slug, a dot and 80
bits of its SHA-256 (``chat-cafe.k2x...``). The dot never occurs in the first form,
so the two forms cannot meet, and two rooms of the second form share a group only
if their digests collide.
"""
import base64
import hashlib
import re
import unicodedata

from channels_example.protocol import ProtocolError

DEFAULT_ROOM = "lobby"
MAX_ROOM_LENGTH = 100

GROUP_PREFIX = "chat-"
_READABLE_ROOM = re.compile(r"[A-Za-z0-9_-]{1,80}\Z")
_NOT_SLUG = re.compile(r"[^A-Za-z0-9_-]+")
_SLUG_LENGTH = 40


class InvalidRoom(ProtocolError):
    """The path cannot name a room; the detail says why."""

    def __init__(self, detail):
        super().__init__("invalid_room", detail)


def room_from_path(path):
    """Return the room named by a WebSocket path, or raise InvalidRoom."""
    name = path.strip("/")
    if not name:
        return DEFAULT_ROOM
    if "/" in name:
        raise InvalidRoom("a room name is one path segment, not %r" % name)
    if len(name) > MAX_ROOM_LENGTH:
        raise InvalidRoom("a room name has at most %d characters, not %d" % (MAX_ROOM_LENGTH, len(name)))
    for char in name:
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            raise InvalidRoom("a room name cannot contain the control character U+%04X" % ord(char))
    if name != name.strip():
        raise InvalidRoom("a room name cannot start or end with whitespace")
    return name


def group_name(room):
    """Return the channel-layer Group name for a valid room (see the module docstring)."""
    if _READABLE_ROOM.match(room):
        return GROUP_PREFIX + room
    ascii_room = unicodedata.normalize("NFKD", room).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_room).strip("-")[:_SLUG_LENGTH]
    digest = hashlib.sha256(room.encode("utf-8")).digest()[:10]
    return "%s%s.%s" % (GROUP_PREFIX, slug, base64.b32encode(digest).decode("ascii").lower())
