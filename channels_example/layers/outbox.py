"""daphne's outbox: the thread that writes its sockets' frames to Redis, many per round trip.

Mixed into the Redis layers (channels_example.layers.redis): daphne's ``send`` of a
``websocket.receive`` puts the frame on ``_outbox`` and returns, so the reactor never
waits on Redis for an incoming frame; this thread writes what is queued, up to
OUTBOX_BATCH per round trip per shard.
"""
import collections
import logging
import time
import uuid

import redis

log = logging.getLogger(__name__)


class Outbox:
    """``outbox_hold_seconds`` and ``outbox_limit`` come from the layer's configuration."""

    OUTBOX_BATCH = 500
    _held = 0

    def __init__(self, outbox_hold_seconds=10, outbox_limit=20000, **config):
        super().__init__(**config)
        self.outbox_hold_seconds, self.outbox_limit = outbox_hold_seconds, outbox_limit

    def _write_outbox(self):
        """On a thread in daphne: write queued frames, up to OUTBOX_BATCH per round trip per shard.

        While no shard can take them (Redis down, a Sentinel failover under way) frames are
        held and tried again every 0.1 s, for outbox_hold_seconds at most; then they are
        dropped, logged and counted. The frames queued or held are at most outbox_limit:
        past it, daphne refuses the next frame (1013).
        """
        held = collections.deque()  # (first failure, channel, message)
        while True:
            if held:
                time.sleep(0.1)  # Redis is down: do not spin
                batch = [(channel, message) for _, channel, message in held]
                since = {id(message): failed for failed, _, message in held}
                held.clear()
            else:
                batch, since = [self._outbox.get()], {}
            while len(batch) < self.OUTBOX_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            by_shard = collections.defaultdict(list)
            for channel, message in batch:
                by_shard[next(self._send_index_generator)].append((channel, message))
            now = time.monotonic()
            for index, frames in by_shard.items():
                try:
                    unwritten = self._write(index, frames)
                except Exception:  # the thread must outlive any one batch
                    log.exception("lost %d frames for websocket.receive", len(frames))
                    continue
                for channel, message in unwritten:
                    failed = since.get(id(message), now)
                    if now - failed < self.outbox_hold_seconds:
                        held.append((failed, channel, message))
                    else:
                        self._drop_frame(channel, message, "Redis was unreachable for %d s" % self.outbox_hold_seconds)
            self._held = len(held)

    def _write(self, index, frames):
        """Write frames to shard ``index``, or, while it is down, to the next shard that is up; the
        frames no shard could take."""
        for _ in range(self.ring_size):
            try:
                return self._write_to(index, frames)
            except redis.exceptions.ConnectionError as error:
                self._shard_down(index, error)
                index = (index + 1) % self.ring_size
        return frames

    def _write_to(self, index, frames):
        # EVALSHA itself, not the Script: redis-py sends SCRIPT EXISTS before every pipeline that
        # calls one, a round trip more per batch.
        connection = self.connection(index)
        pipe = connection.pipeline(transaction=False)
        for channel, message in frames:
            pipe.evalsha(self.chansend.sha, 2, self.prefix + uuid.uuid4().hex, self.prefix + channel,
                         self.serialize(message), self.expiry, self.get_capacity(channel))
        results = pipe.execute(raise_on_error=False)
        self._shard_up(index)
        if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
            # A new Redis, or one that restarted: load the script, and write what it refused.
            connection.script_load(self.lua_chansend)
            refused = [frame for frame, result in zip(frames, results)
                       if isinstance(result, redis.exceptions.NoScriptError)]
            return self._write_to(index, refused)
        for (channel, message), result in zip(frames, results):
            if isinstance(result, Exception):
                self._drop_frame(channel, message, result)
        return []

    def _drop_frame(self, channel, message, why):
        try:
            self.count_drop(channel)
        except redis.exceptions.ConnectionError:
            self.dropped += 1
        log.warning("lost a frame from %s on %s: %s", message["reply_channel"], channel, why)
