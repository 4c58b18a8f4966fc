"""Each socket's chat messages reach the room in the order the client sent them.

Why this is needed: channels 1.x gives each of a socket's frames (``websocket.receive``,
numbered by daphne in ``order``) to whichever worker is free. With two ``runworker``
processes, or runserver's four worker threads, frame n+1 is often handled, and its
``Group.send`` flushed, before frame n. channels' own ``enforce_ordering`` does not
help with Group sends: it releases frame n+1 to the next worker before frame n's
buffered sends are flushed; with ``immediately=True`` it keeps order but requeues
frames in a loop whose cost grows quadratically with the burst (docs/ordering.md).

What ``@in_order`` guarantees: the sends of a socket's frames (the room's chat message,
or the error frame to the sender) are made in the socket's ``order``, with any number of
workers and threads, on any number of hosts, and a socket's chat messages are numbered in
the room in that order. The consumer itself runs at once on any worker; its sends are
taken out of channels' end-of-consumer buffer and handed to the deployment's *sequencer*
(channels_example.chat.sequencers) with the frame's order: the frame the socket is waiting
for is delivered at once, with every frame already parked behind it; a frame that
completes early is parked, and its worker returns at once: no worker ever waits for another.

Faults: the channel layer delivers at most once, so a frame can be lost with a worker
killed while handling it. Frames after the gap are then held until a later frame
arrives more than settings.ORDERING_GAP_SECONDS after the first of them was parked;
then they are delivered in order and the gap is skipped. A frame that completes after
its turn was skipped is delivered at once rather than lost. The disconnect is a
socket's last frame, so no later frame can come to skip a gap in front of it: a
disconnect left parked is delivered by the timed ``chat.sweep`` (``sweep``) once its gap
is stale.
"""
import functools

from channels import Group
from channels.message import pending_message_store

from channels_example.backends.shards import PerDeployment
from channels_example.chat import rooms
from channels_example.chat.sequencers import LocalSequencer, RedisSequencer


def in_order(consumer):
    """Deliver what the consumer sends for each frame in the socket's frame order.

    Wrap a WebSocket consumer (outside ``@channel_session``). A ``websocket.connect`` is
    order 0, before every frame: its sends (the accept, welcome, history and the room's join
    event) need no turn, and the sequencer makes them at once, in one round trip on Redis; so
    does a message without an ``order`` (channels' test client sends none).

    channels keeps a consumer's sends in ``pending_message_store`` until it returns (its
    consumer atomicity); this takes them from there, the one place channels 1.1.8 offers.
    """

    @functools.wraps(consumer)
    def inner(message, *args, **kwargs):
        order = message.content.get("order")
        buffered = getattr(pending_message_store.threadlocal, "messages", None)
        if buffered is None:  # not run by a worker: channels keeps no sends to take
            return consumer(message, *args, **kwargs)
        start = len(buffered)
        try:
            return consumer(message, *args, **kwargs)
        finally:
            sends = [_describe(target, content) for target, content in buffered[start:]]
            del buffered[start:]
            if order is None or message.channel.name == "websocket.connect":
                sequencer().deliver_now(sends)
            else:
                final = message.channel.name == "websocket.disconnect"
                sequencer().complete(message.reply_channel.name, order, sends, final)

    return inner


def next_order(socket, path=""):
    """The order of the socket's next frame not yet delivered (daphne asks it as a socket nears
    SOCKET_BACKLOG: channels_example.interface.frames)."""
    with rooms.socket_keys_with_path(path):
        return sequencer().next_order(socket)


def sweep():
    """Deliver the disconnects left parked behind a lost frame, once their gap is stale (on chat.sweep)."""
    sequencer().sweep()


def _describe(target, content):
    """A buffered send as a sequencer takes it: ``[kind, name, content]``."""
    kind = getattr(target, "kind", None) or ("group" if isinstance(target, Group) else "channel")
    return [kind, target.name, content]


sequencer = PerDeployment(LocalSequencer, RedisSequencer)
