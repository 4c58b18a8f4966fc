"""What both project layers add to their stock layer: nothing dropped silently, nothing left behind.

1. **No silent drops.** A Group send skips a member whose channel is full (every
   socket of one daphne shares that daphne's process channel). The stock layers skip
   it silently; these log a warning naming the group and channel, and count it
   (``dropped``, and on Redis a counter on each shard: ``dropped_total``).
2. **A refused frame's disconnect.** When ``websocket.receive`` is full, daphne closes the
   socket that sent the frame with 1013, but mutes it first, and a muted socket's close sends
   no ``websocket.disconnect``: the socket would stay in its Groups for ``group_expiry``.
   These layers send that disconnect themselves.
3. **The join gate** (channels_example.layers.gate) for the streams in ``gate_streams``.
"""
import collections
import logging

from channels_example.layers.gate import JoinGate

log = logging.getLogger(__name__)


class ExplicitDelivery:
    """Mixed into a stock layer (asgi_redis's, asgiref's in-memory) before it in the bases."""

    def __init__(self, gate_streams=(), gap_seconds=1.0, **config):
        super().__init__(**config)
        self.gate = JoinGate(gate_streams, gap_seconds=gap_seconds, closed_seconds=self.expiry)
        self.dropped = 0
        self.pending_disconnects = collections.deque()

    def send(self, channel, message):
        if channel == "websocket.receive":
            try:
                return super().send(channel, message)
            except self.ChannelFull:  # the shared queue is full: daphne closes this socket with 1013
                self.disconnect_refused(message)
                raise
        if channel == "websocket.disconnect":
            self.closed(message["reply_channel"])
        super().send(channel, message)

    def closed(self, socket):
        """daphne sent the socket's websocket.disconnect: forget what was kept for it."""
        self.gate.forget(socket)

    def disconnect_refused(self, frame, now=True):
        """Send the websocket.disconnect daphne will not send for a socket whose ``frame`` was refused.

        daphne closes such a socket with 1013 but marks it muted, and a muted socket's
        close sends no disconnect: without this it would stay in its Group and in its
        room's presence for a day. Its ``order`` is the refused frame's, the last the
        socket will have, and it keeps the frame's other keys but the frame's body (its
        ``path``, which the routing may read). Kept and sent again later if the layer cannot
        take it now (or, ``now`` false, while Redis is known to be down: at the next flush).
        """
        disconnect = {key: value for key, value in frame.items() if key not in ("text", "bytes", "received_at")}
        self.pending_disconnects.append(dict(disconnect, code=1013))
        if now:
            self.flush_disconnects()

    _flushing = False

    def flush_disconnects(self):
        self._flushing = True
        try:
            while self.pending_disconnects:
                try:
                    self.send("websocket.disconnect", self.pending_disconnects[0])
                except self.ChannelFull:
                    return
                self.pending_disconnects.popleft()
        finally:
            self._flushing = False

    def send_to_members(self, group, channels, message):
        """A Group send to these members, each drop logged and counted."""
        for channel in channels:
            try:
                self.send(channel, message)
            except self.ChannelFull:
                self.count_drop(channel)
                log.warning("dropped a message to group %s for %s: its channel is full", group, channel)

    def count_drop(self, channel, count=1):
        self.dropped += count
