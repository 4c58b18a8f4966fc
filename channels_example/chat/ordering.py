"""Each socket's chat messages reach the room in the order the client sent them.

Why this is needed: channels 1.x gives each of a socket's frames (``websocket.receive``,
numbered by daphne in ``order``) to whichever worker is free. With two ``runworker``
processes, or runserver's four worker threads, frame n+1 is often handled, and its
``Group.send`` flushed, before frame n. channels' own ``enforce_ordering`` does not
help with Group sends: it releases frame n+1 to the next worker before frame n's
buffered sends are flushed; with ``immediately=True`` it keeps order but requeues
frames in a loop whose cost grows quadratically with the burst (docs/ordering.md).

What ``@in_order`` guarantees: the sends of a socket's frames (the room's chat message,
or the error frame to the sender) are delivered in the socket's ``order``, with any
number of workers and threads, on any number of hosts. The consumer itself runs at
once on any worker; its sends are taken out of channels' end-of-consumer buffer and
handed to the socket's *sequencer* with the frame's order:

* the frame the socket is waiting for is delivered at once, together with every
  frame already parked behind it, by the worker that completed it;
* a frame that completes early is parked, and its worker returns at once: no worker
  ever waits for another;
* one worker at a time delivers for a socket (a lease that expires after
  settings.ORDERING_LEASE_SECONDS if its worker dies).

The sequencer is a reorder buffer (channels_example.layers.reorder) with a lease: in
this process's memory under runserver, in a Redis hash per socket otherwise (the same
algorithm in Lua; channels_example.chat.sequencers). Where one Redis server holds every
key, the frame's sends are done in the same Lua script that parks or releases it: one
round trip per frame, and no lease, since a script runs alone (channels_example.chat.scripted;
docs/ordering.md has the measurements).

Faults: the channel layer delivers at most once, so a frame can be lost with a worker
killed while handling it. Frames after the gap are then held until a later frame
arrives more than settings.ORDERING_GAP_SECONDS after the first of them was parked;
then they are delivered in order and the gap is skipped. A frame that completes after
its turn was skipped is delivered at once rather than lost. The disconnect is a
socket's last frame, so no later frame can come to skip a gap in front of it: a
disconnect left parked is put on a list that the timed ``chat.sweep`` (``sweep``)
delivers once its gap is stale.
"""
import functools

from channels import Group
from channels.message import pending_message_store
from django.conf import settings

from channels_example.backends.shards import PerDeployment, socket_keys_on
from channels_example.chat import rooms, scripted
from channels_example.chat.sequencers import LocalSequencer, RedisSequencer


def in_order(consumer):
    """Deliver what the consumer sends for each frame in the socket's frame order.

    Wrap a WebSocket consumer (outside ``@channel_session``). Frames without an ``order``
    key are delivered as usual. A ``websocket.connect`` is order 0, before every frame:
    its sends (the accept, welcome, history and the room's join event) need no turn, and
    go through the sequencer only where one script does them all (the scripted
    sequencer), in one round trip instead of one or two each.
    """

    @functools.wraps(consumer)
    def inner(message, *args, **kwargs):
        order = message.content.get("order")
        buffered = getattr(pending_message_store.threadlocal, "messages", None)
        chosen = sequencer()
        connect = message.channel.name == "websocket.connect"
        if order is None or buffered is None or (connect and not isinstance(chosen, scripted.ScriptedSequencer)):
            return consumer(message, *args, **kwargs)
        start = len(buffered)
        try:
            return consumer(message, *args, **kwargs)
        finally:
            sends = [_describe(target, content) for target, content in buffered[start:]]
            del buffered[start:]
            final = message.channel.name == "websocket.disconnect"
            chosen.complete(message.reply_channel.name, order, sends, final)

    inner.unordered = consumer  # for measuring what ordering costs (bench/ordering_cost.py)
    return inner


def next_order(socket, path=""):
    """The order of the socket's next frame not yet delivered (daphne asks it as a socket nears
    SOCKET_BACKLOG: channels_example.interface.frames)."""
    with rooms.socket_keys_with_path(path):
        return sequencer().next_order(socket)


def sweep():
    """Deliver the disconnects left parked behind a lost frame, once their gap is stale (on chat.sweep)."""
    chosen = sequencer()
    for index, socket in chosen.closing_due():
        with socket_keys_on(index=index):
            chosen.sweep_socket(socket)
            if chosen.finished(socket):
                chosen.forget_closing(socket)


def _describe(target, content):
    """A buffered send as a sequencer takes it: ``[kind, name, content]`` (channels_example.chat.sequencers)."""
    kind = getattr(target, "kind", None) or ("group" if isinstance(target, Group) else "channel")
    return [kind, target.name, content]


def _in_redis(shards):
    """The scripted sequencer where it can work (one Redis server, settings.SCRIPTED_DELIVERY), else RedisSequencer."""
    if settings.SCRIPTED_DELIVERY and scripted.available(shards):
        return scripted.ScriptedSequencer(shards)
    return RedisSequencer(shards)


sequencer = PerDeployment(LocalSequencer, _in_redis)
