"""The wire protocol: what a client may send, and every frame the server sends.

This module is the definition; docs/protocol.md describes it for client authors.

Client to server, one text frame each:
    {"message": "..."}                     a chat message
    any other text                         taken whole as the message, so the seed's
                                           page, which sends "hello world", still works
    {"action": "delete", "seq": 12}        staff only: delete the room's message 12
    {"action": "mute", "target": "bob", "seconds": 300}
                                           staff only: bob's messages are refused for 5 min
A frame cannot choose who speaks: a "handle" in it is refused (handle_not_allowed). A
signed-in socket (the session cookie rides the handshake) speaks as its username; a
guest names itself when it connects, ``ws://host/<room>/?handle=ann``, or is given
``guest-xxxxxx`` (channels_example.chat.identity).

Server to client, always JSON text frames. On joining, in this order:
    {"type": "welcome", "room", "handle", "signed_in", "staff", "sender", "members",
     "members_signed_in"}         who the client is (sender: the id its own messages
                                  carry), the handles of everyone in the room, and
                                  which of them are signed in
    {"type": "history", "room", "messages", "upto"}    the room's last messages (each a
                                                      "message" frame), oldest first
                                  with ?since=N (a reconnect: the highest seq shown) also
                                  "since" and "complete": every message after N, oldest
                                  first, or the last RESUME_LIMIT and complete false
then, with no gap and no duplicate after those two:
    {"type": "message", "room", "handle", "signed_in", "sender", "message", "ts", "seq"}
                                  ts: ms since the epoch; seq: the message's number in
                                  its room, 1, 2, 3... (history items have it too)
    {"type": "presence", "room", "event", "handle", "signed_in", "members"}
                                  event: "join" or "leave"; members: how many are
                                  in the room now
    {"type": "deleted", "room", "seq", "by"}           a moderator deleted message seq
    {"type": "muted", "room", "handle", "seconds", "by"}   a moderator muted a name
and to the sender only:
    {"type": "error", "code", "detail"}   (rate_limited and muted add "retry_after")

A frame that breaks these rules gets an error frame, reaches no one else, and
leaves the socket open. A connection that cannot be served (its path names no
room, its handle is invalid or taken) is accepted only to be told why and closed with
CLOSE_REFUSED, so a browser can show the reason instead of a bare 403; a socket
whose user signed out elsewhere is closed with 4401 (identity.CLOSE_SIGNED_OUT).
"""
import hashlib
import json
import time
import unicodedata
from urllib.parse import parse_qs

from django.conf import settings

# Private-use WebSocket close code: the connection was refused, do not retry as is.
CLOSE_REFUSED = 4400


class ProtocolError(ValueError):
    """A client broke the protocol. ``code`` is stable for programs, ``detail`` is for people."""

    def __init__(self, code, detail, **extra):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra

    def frame(self):
        """The error frame telling the sender what was wrong."""
        return error(self.code, self.detail, **self.extra)

    def refusal(self):
        """Accept, explain and close in one reply: a connection refused with its reason."""
        frame = self.frame()
        frame.update(accept=True, close=CLOSE_REFUSED)
        return frame


def parse_frame(content):
    """What a websocket.receive message asks for: ``("message", text)``, ``("delete", seq)``
    or ``("mute", handle, seconds)``.

    Raises ProtocolError for a binary frame, a JSON object without a string "message"
    or with a "handle", an empty or over-long message, text no database takes, or a
    malformed action. (A frame over MAX_FRAME_LENGTH never gets here: daphne answers it,
    channels_example.interface.frames.)
    """
    if content.get("text") is None:
        raise ProtocolError("binary_frame", "send chat messages as text frames; binary frames are not accepted")
    text = content["text"]
    message = text
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to be a chat frame: text
        data = None
    if isinstance(data, dict):
        if "handle" in data:
            raise ProtocolError("handle_not_allowed", "a frame cannot choose who speaks: you speak as the "
                                "name you connected with")
        if "action" in data:
            return _action(data)
        message = data.get("message")
        if not isinstance(message, str):
            raise ProtocolError("bad_message", 'a JSON frame needs "message" as a string')
    if not message.strip():
        raise ProtocolError("empty_message", "the message is empty")
    if len(message) > settings.MAX_MESSAGE_LENGTH:
        raise ProtocolError(
            "message_too_long",
            "a message has at most %d characters, this one has %d" % (settings.MAX_MESSAGE_LENGTH, len(message)),
        )
    refused = next((char for char in message if _unstorable(char)), None)
    if refused is not None:
        raise ProtocolError("invalid_text", "a message cannot contain %s" % describe_char(refused))
    return "message", message


def _action(data):
    action = data["action"]
    if action == "delete":
        seq = data.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ProtocolError("bad_action", 'delete needs "seq", the number of a message in the room')
        return "delete", seq
    if action == "mute":
        seconds = data.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= settings.MAX_MUTE_SECONDS:
            raise ProtocolError("bad_action", 'mute needs "seconds", 1 to %d' % settings.MAX_MUTE_SECONDS)
        return "mute", validate_handle(data.get("target")), seconds
    raise ProtocolError("bad_action", 'an action is "delete" or "mute", not %r' % (action,))


def validate_handle(handle):
    """The handle, NFC-normalised and without surrounding whitespace; or ProtocolError("bad_handle").

    A handle has a visible character and no control or format character (bidi controls
    and zero-width characters among them), so no two handles that look the same differ.
    """
    if not isinstance(handle, str):
        raise ProtocolError("bad_handle", "a handle must be a string")
    handle = unicodedata.normalize("NFC", handle).strip()
    if not 1 <= len(handle) <= settings.MAX_HANDLE_LENGTH:
        raise ProtocolError("bad_handle", "a handle has 1 to %d characters" % settings.MAX_HANDLE_LENGTH)
    refused = next((char for char in handle if not_in_a_name(char)), None)
    if refused is not None:
        raise ProtocolError("bad_handle", "a handle cannot contain %s" % describe_char(refused))
    if not any(visible(char) for char in handle):
        raise ProtocolError("bad_handle", "a handle needs at least one visible character")
    return handle


# Letters that show nothing: the Hangul fillers and the blank Braille pattern.
_INVISIBLE = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}


def visible(char):
    """True for a character that shows as something: a letter, digit, punctuation mark or symbol."""
    return unicodedata.category(char)[0] in "LNPS" and char not in _INVISIBLE


def not_in_a_name(char):
    """True for what a room or handle may not contain: control, format (bidi, zero-width),
    private-use, surrogate and unassigned code points, and line and paragraph separators."""
    return unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp")


def _unstorable(char):
    """True for what a message may not contain: NUL and the other C0 and C1 controls but tab and
    newlines (PostgreSQL refuses NUL), and lone surrogates (they have no UTF-8)."""
    category = unicodedata.category(char)
    return (category == "Cc" and char not in "\t\n\r") or category == "Cs"


def describe_char(char):
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``: a character named so that any reader can see it."""
    return "U+%04X%s" % (ord(char), " (%s)" % unicodedata.name(char) if unicodedata.name(char, "") else "")


def handle_from_query_string(query_string, reply_channel):
    """The ``?handle=`` a client connected with, or a generated one stable for its socket."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("utf-8", "replace")
    values = parse_qs(query_string or "").get("handle")
    if values:
        return validate_handle(values[0])
    return "guest-" + hashlib.sha1(reply_channel.encode("utf-8")).hexdigest()[:6]


def since_from_query_string(query_string):
    """The ``?since=N`` a reconnecting client sent (the highest seq it has shown), or None."""
    if isinstance(query_string, bytes):
        query_string = query_string.decode("utf-8", "replace")
    values = parse_qs(query_string or "", keep_blank_values=True).get("since")
    if not values:
        return None
    if not values[0].isdigit() or not values[0].isascii():
        raise ProtocolError("bad_since", "since is the seq of the last message shown, 0 or more, not %r" % values[0])
    return int(values[0])


def chat_message(room, speaker, message):
    """A chat message as a worker accepts it: the fields of its frame except ``seq``,
    which the room assigns when the message reaches it (channels_example.chat.rooms)."""
    return {"type": "message", "room": room, "handle": speaker.handle, "signed_in": speaker.signed_in,
            "sender": speaker.sender, "message": message, "ts": int(time.time() * 1000)}


def message_frame(message, seq):
    """The frame every member of the room receives for one chat message."""
    return encode(dict(message, seq=seq))


def welcome(room, speaker, members, members_signed_in=()):
    """The first frame a joining client receives: who it is, who is in the room (itself included),
    and which of those handles are signed-in users'."""
    return _frame(type="welcome", room=room, handle=speaker.handle, signed_in=speaker.signed_in,
                  staff=speaker.staff, sender=speaker.sender, members=sorted(members),
                  members_signed_in=sorted(set(members_signed_in)))


def history(room, messages, upto, **resumed):
    """The second frame: the room's last messages, oldest first; ``upto`` is the seq
    of the room's latest message when the history was read (0 in a new room). A resume
    adds ``since`` and ``complete`` (channels_example.chat.history.history_frame)."""
    return _frame(type="history", room=room, messages=messages, upto=upto, **resumed)


def presence(room, event, handle, members, signed_in):
    """What the room receives when someone joins or leaves: ``members`` is the count after it."""
    return _frame(type="presence", room=room, event=event, handle=handle, signed_in=signed_in, members=members)


def deleted(room, seq, by):
    """What the room receives when a moderator deleted its message ``seq``."""
    return _frame(type="deleted", room=room, seq=seq, by=by)


def muted(room, handle, seconds, by):
    """What the room receives when a moderator muted ``handle`` for ``seconds``."""
    return _frame(type="muted", room=room, handle=handle, seconds=seconds, by=by)


MUTED_DETAIL = "a moderator muted you here: %s s to go"


def muted_error(wait):
    """The error frame for a message whose sender a moderator muted, ``wait`` seconds before it may speak."""
    return error("muted", MUTED_DETAIL % ("%.0f" % wait), retry_after=round(wait, 1))


def error(code, detail, **extra):
    """The frame the sender of a bad frame receives (``extra``: e.g. ``retry_after`` for rate_limited)."""
    return _frame(type="error", code=code, detail=detail, **extra)


def encode(fields):
    """A JSON text frame: the channel message daphne sends to the client as is."""
    return {"text": json.dumps(fields, ensure_ascii=False)}


def _frame(**fields):
    return encode(fields)
