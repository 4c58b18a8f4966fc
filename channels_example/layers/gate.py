"""The join gate: for each joining socket, its snapshots first, then every later message once, in order.

An application that numbers the messages of a stream (a room's chat messages 1, 2, 3...)
and sends a joiner a snapshot of the stream (the room's history "up to 3") has a race:
the joiner must be a member *before* the snapshot is read, or it misses what is sent
between the two; so a message sent meanwhile can reach it live before its snapshot,
and again inside it. And two workers sending to one stream at once may deliver its
messages 7 and 8 in either order. The gate, in the layer that hands messages to daphne,
closes both holes. The application tags its messages (``live``, ``snapshot``) and names
its streams in the layer's configuration (``gate_streams``); for each socket the gate:

* holds the stream messages of a joining socket until it has passed a snapshot of
  every stream;
* from then on passes each stream's messages in their numbered order, starting just
  after its snapshot, and drops any numbered at or below what has passed (the snapshot
  held them).

A number that never comes (a message lost with a killed worker, or dropped for a full
channel) holds the messages after it for ``gap_seconds`` at most; then the gap is
skipped, and logged. A socket whose snapshots do not come within ``max_seconds`` (or
``max_held`` messages) gets what was held, and a warning is logged. Untagged messages
(accepts, errors, HTTP) pass as they are. A socket is forgotten when daphne sends its
websocket.disconnect; stream messages still coming to it for ``closed_seconds`` after
that are dropped (daphne would discard them).

The tag is one private key, removed before daphne sees the message (daphne refuses a
reply with keys it does not know). A layer without the gate (asgi_redis's own) would
hand it to daphne, so ``live`` and ``snapshot`` tag a message only for a layer that
lists GATE in its extensions.
"""
import logging
import threading
import time

from channels_example.layers.reorder import ReorderBuffer

log = logging.getLogger(__name__)

GATE = "gate"  # the layer extension
TAG = "__gate__"


def live(layer, message, stream, number):
    """``message`` as the ``number``-th of ``stream``, for a layer with the gate."""
    return dict(message, **{TAG: {"stream": stream, "seq": number}}) if GATE in layer.extensions else message


def snapshot(layer, message, stream, upto):
    """``message`` as a snapshot of ``stream`` holding every message up to ``upto``."""
    return dict(message, **{TAG: {"stream": stream, "upto": upto}}) if GATE in layer.extensions else message


class JoinGate:
    def __init__(self, streams, max_held=1000, max_seconds=5.0, gap_seconds=1.0, closed_seconds=60):
        self.streams = tuple(streams)
        self.max_held, self.max_seconds = max_held, max_seconds
        self.gap_seconds, self.closed_seconds = gap_seconds, closed_seconds
        self._lock = threading.Lock()
        self._joining = {}  # socket -> {"since": time, "upto": {stream: number}, "held": [(stream, number, message)]}
        self._open = {}  # socket -> {stream: ReorderBuffer}
        self._gaps = set()  # (socket, stream) with messages parked behind a gap
        self._closed = {}  # socket -> time of its disconnect
        self._purged = time.monotonic()

    def admit(self, socket, message):
        """The (socket, message) pairs to hand daphne now for ``message`` to ``socket``."""
        return self.admit_all([socket], message)

    def admit_all(self, sockets, message):
        """As ``admit``, for one message to each of these sockets (a Group message to a daphne)."""
        tag = message.get(TAG)
        if tag is None:
            return [(socket, message) for socket in sockets]
        message = {key: value for key, value in message.items() if key != TAG}
        pairs = []
        with self._lock:
            for socket in sockets:
                if "seq" in tag:
                    pairs += [(socket, out) for out in self._live(socket, tag["stream"], tag["seq"], message)]
                    continue
                state = self._joining_state(socket)
                state["upto"][tag["stream"]] = tag["upto"]
                pairs.append((socket, message))
                if all(stream in state["upto"] for stream in self.streams):
                    pairs += [(socket, out) for out in self._let_in(socket, state["upto"])]
        return pairs

    def overdue(self):
        """Pairs released because a socket waited too long for its snapshots, or behind a gap."""
        now, out = time.monotonic(), []
        with self._lock:
            for socket, state in list(self._joining.items()):
                if now - state["since"] > self.max_seconds:
                    out.extend((socket, message) for message in self._let_through(socket, "%.0f s" % self.max_seconds))
            for socket, stream in list(self._gaps):
                buffer = self._open.get(socket, {}).get(stream)
                if buffer is None:
                    self._gaps.discard((socket, stream))
                else:
                    out.extend((socket, message) for message in self._pop_due(socket, stream, buffer, now))
            if now - self._purged > 1:
                self._purged = now
                for socket, closed in list(self._closed.items()):
                    if now - closed > self.closed_seconds:
                        del self._closed[socket]
        return out

    def forget(self, socket):
        """The socket closed: drop its state, and its stream messages for ``closed_seconds``."""
        with self._lock:
            self._open.pop(socket, None)
            self._joining.pop(socket, None)
            self._closed[socket] = time.monotonic()

    def sockets(self):
        """How many sockets the gate holds state for: ``(joining, open)``."""
        with self._lock:
            return len(self._joining), len(self._open)

    def _joining_state(self, socket):
        if socket not in self._joining:
            self._joining[socket] = {"since": time.monotonic(), "upto": {}, "held": []}
        return self._joining[socket]

    def _live(self, socket, stream, number, message):
        if socket in self._open:
            buffer = self._open[socket][stream]
            if not buffer.push(number, message, time.monotonic()):
                return []
            return self._pop_due(socket, stream, buffer, time.monotonic())
        if socket in self._closed:
            return []
        held = self._joining_state(socket)["held"]
        held.append((stream, number, message))
        if len(held) > self.max_held:
            return self._let_through(socket, "%d messages" % self.max_held)
        return []

    def _pop_due(self, socket, stream, buffer, now):
        out = buffer.pop_due(now)
        if buffer.skipped:
            log.warning("%s: %s %d to %d never came; skipped", socket, stream, *buffer.skipped)
        if buffer.waiting:
            self._gaps.add((socket, stream))
        else:
            self._gaps.discard((socket, stream))
        return out

    def _let_in(self, socket, upto):
        held = self._joining.pop(socket)["held"]
        # A stream whose start is unknown (None: its snapshot never came) starts at its first message.
        self._open[socket] = {
            stream: ReorderBuffer(None if upto.get(stream) is None else upto[stream] + 1,
                                  gap_seconds=self.gap_seconds, max_parked=self.max_held)
            for stream in self.streams
        }
        now, out = time.monotonic(), []
        for stream, number, message in held:
            buffer = self._open[socket][stream]
            if buffer.push(number, message, now):
                out += self._pop_due(socket, stream, buffer, now)
        return out

    def _let_through(self, socket, why):
        log.warning("no snapshots came for %s after %s: passing its messages on", socket, why)
        state = self._joining[socket]
        upto = {}
        for stream in self.streams:
            first = min((number for held, number, _ in state["held"] if held == stream), default=None)
            upto[stream] = None if first is None else first - 1
        upto.update(state["upto"])
        return self._let_in(socket, upto)
