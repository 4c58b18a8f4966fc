"""The study note's first three consumers (section 二.5), made correct: an echo at /channels_example/.

The note's test page (templates/seed.html, served at /seed/) opens
ws://HOST/channels_example/, sends "hello world" and alerts every frame that comes
back. routing.py sends that one path here with channels 1.x's ``route(..., path=...)``,
ahead of the room routes; every other path is a chat room (channels_example/consumers.py).
So the page alerts what the note promises, "hello world" and nothing else.

What changed from the note, and why:

* ``ws_connect``: the note sends ``{"connect"}``, which is a Python set, not a dict:
  channels refuses it (TypeError, "You can only send dicts as content on channels"),
  so nothing is sent. And since channels 1.0 a socket is open only once its connect
  consumer sends ``{"accept": True}``; without it the handshake is never completed, it
  times out, and the browser reports that the connection failed. Here it accepts, after the Origin check every socket of the
  project gets: ``@allowed_hosts_only`` refuses (403) a page from a host not in
  ALLOWED_HOSTS, and a client that sends no Origin.
* ``ws_message`` is the note's: the text goes back to the sender alone, on its
  ``message.reply_channel``. The note's page sends only text; a binary frame, or one
  too long to reach a worker (settings.MAX_FRAME_LENGTH), has no ``text`` and raised
  KeyError in the note's version. It is answered with the error frame a room sends for
  it (``binary_frame``, by ``@catch_client_error``; a frame too long daphne answers itself,
  ``message_too_long``).
* ``ws_disconnect`` sends nothing. The note's reply goes to a socket that is already
  closed (the note says so itself: "当然,他已经收不到了"), and is a set again.

``@in_order`` is the rooms' (channels_example/chat/ordering.py): replies come back in the
order the frames were sent, with any number of workers, and daphne's per-socket backlog
(settings.SOCKET_BACKLOG), which reads how far each socket's frames were handled from
the same place, sees these frames handled too. daphne's bounds apply as on every socket:
frame size, rate and sockets per client (channels_example/interface/bounds.py).
"""
from channels.security.websockets import allowed_hosts_only

from channels_example.chat import protocol
from channels_example.chat.errors import catch_client_error
from channels_example.chat.ordering import in_order


@allowed_hosts_only
def ws_connect(message):
    """Accept the socket (the note sent a set, and did not accept)."""
    message.reply_channel.send({"accept": True})


@in_order
@catch_client_error
def ws_message(message):
    """Send the text back to the sender, as the note does; a frame without text gets the rooms' error frame."""
    if message.content.get("text") is None:
        protocol.parse_frame(message.content)  # raises the error a room answers a binary frame with
    message.reply_channel.send({
        "text": message.content["text"],
    })


@in_order
def ws_disconnect(message):
    """Send nothing: the socket is closed, and nobody would receive it (the note sent a set to it)."""
