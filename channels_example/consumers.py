"""The seed's three consumers (section 五 of the study note), now correct, and two for the workers' own jobs.

Each WebSocket path is a chat room but /channels_example/, the study note's echo
(channels_example/echo.py): a socket joins its ``Room`` on connect and learns who it
is, who is there and the room's recent history; every chat message it sends goes to
the room, numbered and kept; it leaves on disconnect. A ``Room`` is used as the
1.x docs use a Group (``Room(room).send(...)`` for ``Group("chat-%s" % room).send(...)``).

Who speaks is the socket's Django user, channels 1.x's own way: the session cookie
rides the handshake, ``@channel_session_user_from_http`` copies the user into the
channel session on connect, and ``@channel_session_user`` gives every later frame its
``message.user`` (channels_example.chat.identity; guests pick a name or are given one).
``@allowed_hosts_only`` above them refuses (403) a browser page from a host not in
ALLOWED_HOSTS, and a client that sends no Origin header.

The note's bug, a message handled before ``ws_connect`` had stored the room, cannot
happen in channels 1.x: daphne passes on no frame until the socket is accepted, and
the accept is sent only after ``ws_connect`` has returned and its session was saved.
What can still happen is that a socket's later frame overtakes an earlier one on
another worker; ``@in_order`` delivers each socket's messages in the order sent
(channels_example/chat/ordering.py). ``@rooms.socket_keys_with_room`` keeps a socket's
session and ordering state on its room's Redis server, so that losing one of several
servers stops only the rooms that lived on it. A frame that breaks the protocol raises
``ProtocolError``, which ``@catch_client_error`` answers (channels_example/chat/errors.py).

Two consumers run on the timed channels the chat's clock sends (channels_example/clock.py):
``store_messages`` saves the chat messages delivered since its last run to the database, off
the path that delivers them; ``sweep`` removes the sockets of dead daphnes and delivers
disconnects held behind a lost frame.
"""
import logging

from channels import Group
from channels.auth import channel_session_user, channel_session_user_from_http
from channels.security.websockets import allowed_hosts_only
from django.conf import settings

from channels_example import accounts
from channels_example.chat import history, identity, metrics, moderation, ordering, protocol, rooms
from channels_example.chat.errors import catch_client_error, client_of
from channels_example.chat.ordering import in_order
from channels_example.chat.rooms import Room

log = logging.getLogger(__name__)


@rooms.socket_keys_with_room
@in_order
@allowed_hosts_only
@identity.no_session_key_in_url
@channel_session_user_from_http
@catch_client_error
def ws_connect(message):
    """Join the room named by the path as the socket's user (or a guest) and accept; refuse
    with the reason a path that names no room, or a name the socket may not have.

    The client then receives its welcome (who it is, who is there) and the room's
    history (with ``?since=N``, every message after the one it showed last), and the
    room hears that it joined.
    """
    room = Room.from_path(message.content["path"])
    since = protocol.since_from_query_string(message.content.get("query_string"))
    speaker = identity.speaker_at_connect(message)
    welcome, history_frame, joined = room.join(message.reply_channel, speaker, since)
    message.channel_session["room"] = room.name
    message.channel_session["client"] = client_of(message)
    identity.remember(message.channel_session, speaker)
    if message.user.is_authenticated:
        Group(identity.user_group(message.user.pk)).add(message.reply_channel)
    message.reply_channel.send({"accept": True})
    message.reply_channel.send(welcome)
    message.reply_channel.send(history_frame)
    room.group.send(joined)
    log.info("%s joined %r as %s (%s)", client_of(message), room.name, speaker.handle,
             "signed in" if speaker.signed_in else "guest")


@rooms.socket_keys_with_room
@in_order
@channel_session_user
@catch_client_error
def ws_message(message):
    """Send a chat message to everyone in the sender's room, or do a moderator's action;
    tell the sender if the frame is invalid or not allowed."""
    room = message.channel_session.get("room")
    if room is None:
        raise protocol.ProtocolError("not_joined", "this socket is in no room")
    room, speaker = Room(room), identity.speaker_of(message)
    action, *args = protocol.parse_frame(message.content)
    if action != "message":
        return moderation.apply(room, action, args, speaker, message.user)
    chat_message = protocol.chat_message(room.name, speaker, args[0])
    if "received_at" in message.content:  # daphne stamps each frame (channels_example.interface.frames)
        chat_message["received_at"] = message.content["received_at"]
    # A muted sender is told so (muted, with the seconds left) when its message is delivered.
    room.send(chat_message, sender=message.reply_channel.name)


@rooms.socket_keys_with_room
@in_order
@channel_session_user
def ws_disconnect(message):
    """Leave the room and tell it. The session outlives the socket as long as a frame in flight may."""
    room = message.channel_session.get("room")
    if room is not None:
        Room(room).leave(message.reply_channel)
        log.info("%s left %r as %s, code %s", message.channel_session.get("client", "unknown client"), room,
                 message.channel_session.get("handle"), message.content.get("code"))
    if message.user.is_authenticated:
        Group(identity.user_group(message.user.pk)).discard(message.reply_channel)
    message.channel_session.set_expiry(settings.CHANNEL_MESSAGE_EXPIRY)


def store_messages(message):
    """Save the chat messages delivered since the last time (every STORE_INTERVAL), a batch per transaction."""
    for batch in history.batches_to_store():
        rooms.store(*batch)


def sweep(message):
    """Remove the sockets of daphnes that died without disconnecting them, deliver disconnects held
    behind a lost frame, and sample the deployment's figures (once a second)."""
    rooms.sweep()
    ordering.sweep()
    metrics.sample()
    accounts.clear_expired_sessions()
