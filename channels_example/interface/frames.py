"""What daphne hands the channel layer for each socket: its frames, bounded, stamped and placed.

daphne 1.4.2 sends every frame a client sends to ``websocket.receive``, a queue every socket
shares. These bounds act in daphne, before anything reaches the layer, on any layer (the
project's or asgi_redis's own), with a reason the client can read:

* **Frames too long for a worker** (over MAX_FRAME_LENGTH characters, or bytes if binary) are
  answered at once with a ``message_too_long`` error frame and go nowhere: no worker or Redis
  ever holds them. (Frames over WEBSOCKET_MAX_PAYLOAD bytes are refused with 1009 before daphne
  holds them: bounds.py.)
* **A socket's backlog**: once a socket has SOCKET_BACKLOG frames sent but not yet handled, it
  is closed with 1013 ("try again later"), alone, while the queue has room for everyone else.
  How far a socket's frames were handled is the chat's to say (chat.ordering.next_order), and
  it is asked only when the socket nears the limit. The socket's disconnect then reaches the
  workers as any other close's does.

And every message of a socket carries what the chat wants of daphne:

* ``received_at`` on each frame: when daphne received it (``time.time()``), for the latency
  figure of /metrics;
* ``shard_key`` on each message: its room's (rooms.shard_key_of_path), with which the project's
  layer writes a socket's frames to the Redis shard where its room's state is (layers/outbox.py).
  Other layers carry it to the worker as one more key, which nothing reads.
"""
import logging
import time

from django.conf import settings

from channels_example.chat import ordering, protocol, rooms

log = logging.getLogger(__name__)


class SocketSends:
    """The channel layer as one socket's messages reach it (the ``channel_layer`` daphne's protocol sends on)."""

    __slots__ = ("layer", "ChannelFull", "shard_key")

    def __init__(self, layer, path):
        self.layer = layer
        self.ChannelFull = layer.ChannelFull
        self.shard_key = rooms.shard_key_of_path(path)

    def send(self, channel, message):
        if channel == "websocket.receive":
            message["received_at"] = time.time()
        if self.shard_key is not None:
            message["shard_key"] = self.shard_key
        return self.layer.send(channel, message)


def too_long(payload, binary):
    """The error frame for a frame too long for a worker, or None."""
    if len(payload) <= settings.MAX_FRAME_LENGTH:
        return None
    length = len(payload) if binary else len(payload.decode("utf-8"))
    if length <= settings.MAX_FRAME_LENGTH:
        return None
    return protocol.error("message_too_long", "a frame has at most %d characters, this one had %d"
                          % (settings.MAX_FRAME_LENGTH, length))


def handled_upto(socket, path, known):
    """The order of the socket's next frame not yet handled (chat.ordering.next_order), asked when the
    socket nears SOCKET_BACKLOG; ``known``, the last answer, while the chat cannot tell (Redis down)."""
    try:
        return ordering.next_order(socket, path)
    except Exception as error:  # any failure to read it lets the frame pass: the shared queue still bounds it
        log.warning("cannot read how far %s's frames were handled: %s", socket, error)
        return known
