"""daphne's outbox: the thread that writes its sockets' frames to Redis, many per round trip.

Mixed into the Redis layers (channels_example.layers.redis): daphne's ``send`` of a
``websocket.receive`` puts the frame on ``_outbox`` and returns, so the reactor never
waits on Redis for an incoming frame; this thread writes what is queued, up to
OUTBOX_BATCH per round trip per shard.

With several shards, a frame goes to any shard that is up, unless it carries ``shard_key``
(the application puts it in each message of a socket: channels_example/interface/frames.py).
Then it goes to that key's shard and waits there, held while it is down, as every frame
does when no shard is up: the application keeps the socket's state on that shard, and a
worker that took the frame elsewhere could not reach it.

daphne's ``websocket.connect`` goes through the outbox too, once the server has set
``connect_refused`` (channels_example.interface.bounds does): daphne then answers 503
at once while the connect's shard is known to be down, and later, through that
callback, when the connect cannot be written. A connect is never held: a client waits
for its handshake.
"""
import collections
import logging
import queue
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

    # Set by the server: called, on the outbox's thread, with the reply channel of a
    # websocket.connect that was queued and then could not be written.
    connect_refused = None

    def queue_connect(self, message):
        """daphne's websocket.connect, written by the outbox so that its reactor does not wait on Redis;
        ChannelFull (daphne answers 503) while its shard is known to be down or the outbox is full."""
        down = self.__dict__.get("_shards_down") or set()
        placed = self.frame_shard(message)
        if (self._outbox.qsize() + self._held >= self.outbox_limit or getattr(self, "_redis_down", False)
                or (placed in down if placed is not None else len(down) >= self.ring_size)):
            raise self.ChannelFull()
        self._outbox.put(("websocket.connect", message))

    def _refuse_connect(self, message, why):
        log.warning("refused the connect of %s: %s", message["reply_channel"], why)
        self.connect_refused(message["reply_channel"])

    def frame_shard(self, message):
        """The shard a socket's message must go to (its ``shard_key``'s), or None for any."""
        key = message.get("shard_key")
        if key is None or self.ring_size == 1:
            return None
        return self.consistent_hash(key)

    def _write_outbox(self):
        """On a thread in daphne: write queued frames, up to OUTBOX_BATCH per round trip per shard.

        While no shard can take them (Redis down, a Sentinel failover under way) frames are
        held and tried again every 0.1 s, for outbox_hold_seconds at most; then they are
        dropped, logged and counted. The frames queued or held are at most outbox_limit:
        past it, daphne refuses the next frame (1013).
        """
        held = collections.deque()  # (first failure, channel, message)
        retry_at = 0.0
        while True:
            batch, since = [], {}
            if held:
                # A shard is down: new frames go on at once, the held ones are tried every 0.1 s.
                try:
                    batch.append(self._outbox.get(timeout=max(0.0, retry_at - time.monotonic())))
                except queue.Empty:
                    pass
            else:
                batch.append(self._outbox.get())
            retrying = time.monotonic() >= retry_at
            if held and retrying:
                batch += [(channel, message) for _, channel, message in held]
                since = {id(message): failed for failed, _, message in held}
                held.clear()
            while len(batch) < self.OUTBOX_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            by_shard = collections.defaultdict(list)
            for channel, message in batch:
                placed = self.frame_shard(message)
                by_shard[(placed, True) if placed is not None else (next(self._send_index_generator), False)].append(
                    (channel, message))
            now = time.monotonic()
            was_holding = bool(held)
            for (index, placed), frames in by_shard.items():
                try:
                    unwritten = self._write(index, frames, fall_back=not placed, try_down=retrying)
                except Exception:  # the thread must outlive any one batch
                    log.exception("lost %d frames for websocket.receive", len(frames))
                    continue
                for channel, message in unwritten:
                    if channel == "websocket.connect":
                        self._refuse_connect(message, "Redis cannot be reached")
                        continue
                    failed = since.get(id(message), now)
                    if now - failed < self.outbox_hold_seconds:
                        held.append((failed, channel, message))
                    else:
                        self._drop_frame(channel, message, "Redis was unreachable for %d s" % self.outbox_hold_seconds)
            if held and (since or not was_holding):
                retry_at = now + 0.1
            self._held = len(held)

    def _write(self, index, frames, fall_back=True, try_down=True):
        """Write frames to shard ``index``, or, while it is down, to the next shard that is up
        (``fall_back``); the frames no shard could take. A shard found down is tried only when
        ``try_down`` (every 0.1 s)."""
        down = self.__dict__.get("_shards_down") or ()
        for _ in range(self.ring_size if fall_back else 1):
            if index in down and not try_down:
                index = (index + 1) % self.ring_size
                continue
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
        if channel == "websocket.connect":
            return self._refuse_connect(message, why)
        try:
            self.count_drop(channel)
        except redis.exceptions.ConnectionError:
            self.dropped += 1
        log.warning("lost a frame from %s on %s: %s", message["reply_channel"], channel, why)
