"""The chat's clock: the timed channels, sent on time from a process of their own.

Storing chat history and sweeping are jobs a worker does when told to: a message on
``chat.store`` every STORE_INTERVAL seconds, on ``chat.sweep`` every SWEEP_INTERVAL. The
clock sends them, through the channel layer like any other sender, so any layer carries
them, asgi_redis's own included, and any worker may take them. It is channels 1.x's own
arrangement for timed work: ``manage.py rundelay`` runs the delay server in a process of
its own. Here ``manage.py runclock`` is the Procfile's ``clock`` line; under runserver,
whose in-memory layer exists in one process only, the clock is a thread of runserver
(channels_example/management/commands/runserver.py).

Each tick is also the clock's heartbeat (chat.metrics): /healthz and /status say when no
clock has ticked lately. Several clocks are harmless (a second tick finds less to do, and
the sweep takes a lock), so one per host is a fine way to survive losing one.
"""
import logging
import os
import socket
import threading
import time

import redis
from channels import Channel
from django.conf import settings

from channels_example.chat import metrics

log = logging.getLogger(__name__)


def intervals():
    """``{timed channel: seconds between two of its messages}``."""
    return {"chat.store": settings.STORE_INTERVAL, "chat.sweep": settings.SWEEP_INTERVAL}


class Clock:
    def __init__(self, name=None):
        self.name = name or "%s:%d" % (socket.gethostname(), os.getpid())
        self._due = dict.fromkeys(intervals(), 0.0)
        self._failing = set()  # channels whose last send failed: logged once until one succeeds
        self._beat_at = 0.0

    def tick(self):
        """Send each timed channel that is due its message; the seconds until the next one is due."""
        now = time.monotonic()
        for channel, interval in intervals().items():
            if now >= self._due[channel]:
                self._due[channel] = now + interval
                self._send(channel)
        if now - self._beat_at >= 1:
            self._beat_at = now
            self._beat()
        return max(0.0, min(self._due.values()) - time.monotonic())

    def run(self, stop=None):
        """Tick until ``stop`` (a threading.Event) is set, or for ever."""
        stop = stop or threading.Event()
        log.info("clock %s: %s", self.name, ", ".join("%s every %g s" % item for item in intervals().items()))
        while not stop.is_set():
            stop.wait(self.tick())

    def _send(self, channel):
        sender = Channel(channel)
        try:
            sender.send({"clock": self.name}, immediately=True)
        except (sender.channel_layer.ChannelFull, redis.exceptions.RedisError) as error:
            if channel not in self._failing:
                self._failing.add(channel)
                log.warning("clock %s cannot send %s (are the workers running?): %s", self.name, channel,
                            type(error).__name__ if isinstance(error, sender.channel_layer.ChannelFull) else error)
            return
        if channel in self._failing:
            self._failing.discard(channel)
            log.warning("clock %s sends %s again", self.name, channel)

    def _beat(self):
        try:
            metrics.clock_ticked(self.name)
        except redis.exceptions.RedisError as error:  # the sends above said so already, or will
            log.debug("clock %s: heartbeat not written: %s", self.name, error)


def start_thread():
    """The clock on a daemon thread of this process (runserver's)."""
    thread = threading.Thread(target=Clock("runserver:%d" % os.getpid()).run, name="clock", daemon=True)
    thread.start()
    return thread
