"""Who is speaking: a socket is its Django user (channels 1.x's own auth), or a guest.

``ws_connect`` runs under ``@channel_session_user_from_http``: the session cookie rides
the WebSocket handshake, and channels copies the user from the HTTP session into the
channel session, where ``@channel_session_user`` finds it for every later frame. So:

* a signed-in socket speaks as its username, which the server decides; a frame cannot
  choose who speaks (a "handle" in it is refused);
* a guest (when settings.CHAT_GUESTS allows them) picks a name with ``?handle=`` or is
  given ``guest-xxxxxx``; it can never take a registered username, however it is
  cased (refused, ``handle_taken``);
* within a room a name belongs to one person at a time (channels_example.chat.presence
  refuses a second person, ``handle_in_use``): a signed-in user is one person on every
  tab, a guest is one person per browser session (per socket without one);
* ``sender``, an opaque id of the person (an HMAC of who they are), rides every frame
  the person's messages make; the welcome frame tells each socket its own, so a page
  marks its own messages by it, never by comparing names a stranger can choose.

Every socket of a signed-in user is in the Group ``user_group(user id)``, the 1.x idiom
for "every socket of this user": logging out or changing the password closes them all
(channels_example.accounts).
"""
import functools
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.utils.crypto import constant_time_compare

from channels_example.chat import protocol

GUEST_PREFIX = "guest-"
# Close code for a socket whose user signed out or changed the password elsewhere.
CLOSE_SIGNED_OUT = 4401


@dataclass
class Speaker:
    handle: str
    signed_in: bool
    staff: bool
    person: str  # who they are: user:<id>, guest:<HTTP session key>, or socket:<reply channel>

    @property
    def sender(self):
        return sender_id(self.person)


def sender_id(person):
    """An id that is the same for every message of one person and tells nothing about them."""
    return hmac.new(settings.SECRET_KEY.encode("utf-8"), person.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def user_group(user_id):
    """The Group of every socket of one user."""
    return "user-%d" % user_id


def speaker_at_connect(message):
    """The Speaker a connecting socket is (``message.user`` and ``message.http_session`` set by
    channel_session_user_from_http); raises ProtocolError for a guest that may not be one."""
    user = fresh(message.user, getattr(message, "http_session", None))
    if user is not None:
        try:
            handle = protocol.validate_handle(user.get_username())
        except protocol.ProtocolError as unusable:
            raise protocol.ProtocolError("bad_handle", "the username %r cannot be a name in the chat: %s"
                                         % (user.get_username(), unusable.detail))
        return Speaker(handle, True, user.is_staff, "user:%d" % user.pk)
    if not settings.CHAT_GUESTS:
        raise protocol.ProtocolError("sign_in_required", "sign in to chat here: guests are not admitted")
    handle = protocol.handle_from_query_string(message.content.get("query_string"), message.reply_channel.name)
    account = registered(handle)
    if account is not None:
        raise protocol.ProtocolError("handle_taken", "%s belongs to the account %s (a name is the same in any case): "
                                     "sign in as %s, or choose another" % (handle, account, account))
    session = getattr(message, "http_session", None)
    person = "guest:" + session.session_key if session is not None and session.session_key else (
        "socket:" + message.reply_channel.name)
    return Speaker(handle, False, False, person)


def fresh(user, http_session):
    """The signed-in user as the database has it now, or None: ``message.user`` may come from a
    worker's cache (accounts.CachedModelBackend), and at connect a session made stale by a new
    password or an inactive account must not pass."""
    if not user.is_authenticated:
        return None
    current = get_user_model()._default_manager.filter(pk=user.pk, is_active=True).first()
    session_hash = http_session.get(HASH_SESSION_KEY) if http_session is not None else None
    if current is None or not session_hash or not constant_time_compare(
            session_hash, current.get_session_auth_hash()):
        return None
    return current


def registered(handle):
    """The username of the user who has this name in any case (Ann and ann look alike), or None."""
    return get_user_model().objects.filter(username__iexact=handle).values_list("username", flat=True).first()


def remember(channel_session, speaker):
    """Keep who the socket is in its channel session, for its later frames."""
    channel_session["handle"] = speaker.handle
    channel_session["person"] = speaker.person


def speaker_of(message):
    """Who sends this frame: from the channel session, and ``message.user`` (set by channel_session_user)
    for whether they are still signed in and staff."""
    user = message.user
    return Speaker(message.channel_session["handle"], user.is_authenticated, user.is_authenticated and user.is_staff,
                   message.channel_session["person"])


def no_session_key_in_url(consumer):
    """Drop ``?session_key=`` before channels' http_session reads it (it prefers it to the cookie):
    a session key in a URL ends up in logs and proxies, and lets a link fix someone's session."""
    @functools.wraps(consumer)
    def inner(message, *args, **kwargs):
        query_string = message.content.get("query_string") or b""
        if isinstance(query_string, str):
            query_string = query_string.encode("utf-8")
        if b"session_key" in query_string:
            pairs = parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True)
            message.content["query_string"] = urlencode([pair for pair in pairs if pair[0] != "session_key"]).encode()
        return consumer(message, *args, **kwargs)

    return inner
