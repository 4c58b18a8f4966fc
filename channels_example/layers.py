"""The channel layers this project runs on: the stock ones, with two things made explicit.

``RedisChannelLayer`` is asgi_redis's and ``InMemoryChannelLayer`` is asgiref's (the
seed's), each changed in two ways only:

1. **No silent drops.** A Group send skips any member whose channel is full (every
   socket of one daphne shares that daphne's process channel). The stock layers
   skip it silently; these log a warning naming the group and channel and count
   it (``dropped`` here, and on Redis the key DROPPED_KEY on each shard).
2. **Per-socket backpressure.** ``websocket.receive`` is one queue shared by every
   socket, so a single client flooding it would fill it, and daphne would then close
   whichever socket sent next with 1013, flooders and bystanders alike. Here daphne's
   send of a socket's frame raises ChannelFull when that socket already has
   ``socket_backlog`` frames sent but not yet handled, so daphne closes *that* socket
   with 1013 ("try again later") while the queue still has room for everyone else.
   The count comes from the socket's ``order`` and the ordering sequencer's progress
   (channels_example.ordering), read only when a socket is near its limit.
"""
import logging

import redis
from asgi_redis import RedisChannelLayer as StockRedisChannelLayer
from asgiref.inmemory import ChannelLayer as StockInMemoryChannelLayer

log = logging.getLogger(__name__)

DROPPED_KEY = "channels_example:dropped"


class ExplicitLayerMixin:
    def __init__(self, socket_backlog=1000, **config):
        super().__init__(**config)
        self.socket_backlog = socket_backlog
        self.dropped = 0
        self._handled = {}

    def send(self, channel, message):
        if channel == "websocket.receive":
            self._check_backlog(message["reply_channel"], message["order"])
        elif channel == "websocket.disconnect":
            self._handled.pop(message["reply_channel"], None)
        super().send(channel, message)

    def _check_backlog(self, socket, order):
        # order - next = frames of this socket sent to workers and not yet handled.
        if order - self._handled.get(socket, 1) < self.socket_backlog:
            return
        from channels_example.ordering import sequencer

        self._handled[socket] = sequencer().next_order(socket)
        if order - self._handled[socket] >= self.socket_backlog:
            log.warning("closing %s: %d frames waiting to be handled (socket_backlog)", socket, self.socket_backlog)
            raise self.ChannelFull()

    def send_group(self, group, message):
        for channel in self.group_channels(group):
            try:
                self.send(channel, message)
            except self.ChannelFull:
                self.dropped += 1
                self._count_drop(channel)
                log.warning("dropped a message to group %s for %s: its channel is full", group, channel)


class RedisChannelLayer(ExplicitLayerMixin, StockRedisChannelLayer):
    """Also survives a Redis restart: runworker's loop has no error handling, so a
    receive that cannot reach Redis would end the worker process; here it logs once
    and reports "no message", and the worker and daphne carry on when Redis is back.
    A send that cannot reach Redis is reported as a full channel, which daphne and
    channels already handle."""

    _redis_down = False

    def send(self, channel, message):
        # While Redis is down daphne treats the frame as refused: a new socket gets 503,
        # an open one is closed with 1013 ("try again later") and can reconnect.
        try:
            super().send(channel, message)
        except redis.exceptions.ConnectionError as error:
            log.error("cannot reach Redis to send on %s: %s", channel, error)
            raise self.ChannelFull()

    def receive(self, channels, block=False):
        try:
            result = super().receive(channels, block=block)
        except redis.exceptions.ConnectionError as error:
            if not self._redis_down:
                log.error("cannot reach Redis, retrying: %s", error)
            self._redis_down = True
            return None, None
        if self._redis_down:
            log.warning("Redis is reachable again")
            self._redis_down = False
        return result

    def _count_drop(self, channel):
        self.connection(self.consistent_hash(channel)).incr(DROPPED_KEY)


class InMemoryChannelLayer(ExplicitLayerMixin, StockInMemoryChannelLayer):
    def _count_drop(self, channel):
        """The in-memory count is ``dropped``; there is no other process to tell."""
