"""What both project layers add to their stock layer: nothing dropped silently, one socket's flood refused alone.

1. **No silent drops.** A Group send skips a member whose channel is full (every
   socket of one daphne shares that daphne's process channel). The stock layers skip
   it silently; these log a warning naming the group and channel, and count it
   (``dropped``, and on Redis a counter on each shard: ``dropped_total``).
2. **Per-socket backpressure.** ``websocket.receive`` is one queue shared by every
   socket, so one client flooding it would fill it, and daphne would then close
   whichever socket sent next with 1013, flooders and bystanders alike. Here daphne's
   send of a socket's frame raises ChannelFull when that socket already has
   ``socket_backlog`` frames sent but not yet handled, so daphne closes *that* socket
   with 1013 ("try again later") while the queue has room for everyone else. How far
   a socket's frames have been handled is the application's to say:
   ``socket_progress`` is the dotted path of a function ``(reply channel, path) -> the
   order of its next frame not yet handled``, asked only when a socket nears its limit.
3. **Frames too long for a worker stay out of the layer.** A frame longer than
   ``max_frame_length`` characters (or bytes) reaches the workers as its length only,
   under OVERSIZED, so the application can tell the sender, and Redis never holds it.
4. **The join gate** (channels_example.layers.gate) for the streams in ``gate_streams``.
5. **Frame timestamps.** With ``frame_timestamps``, each ``websocket.receive`` message
   carries ``received_at``, the time (``time.time()``) daphne handed it to the layer, so a
   worker can measure how long a frame took to reach where it is handled.
"""
import collections
import importlib
import logging
import time

from channels_example.layers.gate import JoinGate

log = logging.getLogger(__name__)

OVERSIZED = "oversized"


def imported(dotted_path):
    """The function a configuration names by its dotted path (``package.module.name``), imported when
    first needed: the application's, which the transport does not import."""
    module, name = dotted_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


class ExplicitDelivery:
    """Mixed into a stock layer (asgi_redis's, asgiref's in-memory) before it in the bases."""

    def __init__(self, socket_backlog=None, socket_progress=None, max_frame_length=None, gate_streams=(),
                 gap_seconds=1.0, frame_timestamps=False, **config):
        super().__init__(**config)
        if socket_backlog is not None and socket_progress is None:
            raise ValueError("socket_backlog needs socket_progress: the dotted path of a function "
                             "(reply channel, path) -> the order of its next frame not yet handled")
        self.socket_backlog = socket_backlog
        self.max_frame_length = max_frame_length
        self.frame_timestamps = frame_timestamps
        self.gate = JoinGate(gate_streams, gap_seconds=gap_seconds, closed_seconds=self.expiry)
        self.dropped = 0
        self.pending_disconnects = collections.deque()
        self._progress_path = socket_progress
        self._progress = None
        self._handled = {}

    def send(self, channel, message):
        if channel == "websocket.receive":
            self.check_backlog(message["reply_channel"], message["order"], message.get("path", ""))
            try:
                return super().send(channel, self.frame_for_workers(message))
            except self.ChannelFull:  # the shared queue is full: daphne closes this socket with 1013
                self.disconnect_refused(message["reply_channel"], message["order"], message.get("path", ""))
                raise
        if channel == "websocket.disconnect":
            self.closed(message["reply_channel"])
        super().send(channel, message)

    def frame_for_workers(self, message):
        """The frame as it goes to a worker: an over-long one as its length only; stamped if asked."""
        if self.frame_timestamps:
            message = dict(message, received_at=time.time())
        body = message.get("text") if message.get("text") is not None else message.get("bytes")
        if self.max_frame_length is None or body is None or len(body) <= self.max_frame_length:
            return message
        short = {key: value for key, value in message.items() if key not in ("text", "bytes")}
        short[OVERSIZED] = len(body)
        return short

    def check_backlog(self, socket, order, path=""):
        """Raise ChannelFull, and disconnect the socket for daphne, when it has socket_backlog frames unhandled."""
        if self.socket_backlog is None or order - self._handled.get(socket, 1) < self.socket_backlog:
            return
        try:
            self._handled[socket] = self.socket_progress(socket, path)
        except Exception as error:  # the application cannot tell now (Redis down): let the frame pass
            log.warning("cannot read how far %s's frames were handled: %s", socket, error)
            return
        if order - self._handled[socket] >= self.socket_backlog:
            log.warning("closing %s: %d frames waiting to be handled (socket_backlog)", socket, self.socket_backlog)
            self.disconnect_refused(socket, order, path)
            raise self.ChannelFull()

    def socket_progress(self, socket, path=""):
        if self._progress is None:
            self._progress = imported(self._progress_path)
        return self._progress(socket, path)

    def closed(self, socket):
        """daphne sent the socket's websocket.disconnect: forget what was kept for it."""
        self._handled.pop(socket, None)
        self.gate.forget(socket)

    def disconnect_refused(self, socket, order, path=""):
        """Send the websocket.disconnect daphne will not send for a socket whose frame was refused.

        daphne closes such a socket with 1013 but marks it muted, and a muted socket's
        close sends no disconnect: without this it would stay in its Group and in its
        room's presence for a day. Its ``order`` is the refused frame's, the last the
        socket will have, and its ``path`` the socket's (the routing may depend on it). Kept and
        sent again later if the layer cannot take it now.
        """
        self.pending_disconnects.append({"reply_channel": socket, "path": path, "code": 1013, "order": order})
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
