"""daphne's side of operations: a /healthz that answers without a worker, and daphne's own figures.

**/healthz.** daphne 1.x hands every HTTP request to a worker, so with every worker stopped
a request simply hangs (daphne answers 503 only after its 120 s http timeout). /healthz is
answered here, in daphne, within HEALTH_TIMEOUT seconds whatever happens behind it:

1. every Redis shard is pinged (on a thread: the reactor never waits on Redis); a shard
   that errs or does not answer makes it 503 naming the shard;
2. then the request goes to a worker like any other (channels_example.monitoring.healthz),
   which checks the database and every shard from its side, and answers 200 or 503;
3. if no worker has answered when HEALTH_TIMEOUT is up, daphne answers 503 itself,
   naming the workers. A worker's answer that comes later finds the request finished,
   and daphne drops it.

The answer is a small JSON object: ``{"status": "ok" | "unhealthy", ...}`` with what
was checked. A load balancer can trust it: 200 means a worker answered through the
layer just now, and Redis and the database are reachable.

**Figures.** Once a second each daphne reports its open sockets and what it counted since
(closes by code, the error frames it sent itself) to the deployment's figures (chat.metrics).
"""
import json
import logging
import time
from collections import Counter

from django.conf import settings
from twisted.internet import reactor, task, threads

from channels_example.backends.shards import ping
from channels_example.chat import metrics

log = logging.getLogger(__name__)


class DaphneFigures:
    """What one daphne counts between two reports, and the loop that reports it."""

    def __init__(self, factory):
        self.factory = factory
        self.closes, self.errors = Counter(), Counter()
        self._loop = task.LoopingCall(self.report)
        self._loop.start(1, now=False)

    def report(self):
        from daphne.ws_protocol import WebSocketProtocol

        connections = sum(isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN
                          for protocol in list(self.factory.reply_protocols.values()))
        counts = {metrics.CLOSES: dict(self.closes), metrics.ERRORS: dict(self.errors)}
        self.closes, self.errors = Counter(), Counter()
        deferred = threads.deferToThread(metrics.report_daphne, self.factory.send_channel, connections, counts)
        deferred.addErrback(self._not_reported, counts)
        return deferred

    def _not_reported(self, failure, counts):
        # Redis is down: keep the counts for the next report, and say so once.
        self.closes.update(counts[metrics.CLOSES])
        self.errors.update(counts[metrics.ERRORS])
        log.debug("figures not reported: %s", failure.getErrorMessage())


def healthz(request, forward):
    """Answer /healthz for daphne's ``request``; ``forward()`` hands it to a worker."""
    started = time.monotonic()
    layer = request.factory.channel_layer
    state = {"stage": "redis"}

    def answer(status, body):
        if not request.finished and request.reply_channel in request.factory.reply_protocols:
            body = dict(body, seconds=round(time.monotonic() - started, 3))
            request.serverResponse({"status": status, "headers": [(b"Content-Type", b"application/json"),
                                                                  (b"Cache-Control", b"no-store")],
                                    "content": json.dumps(body).encode("utf-8")})

    def too_late():
        if state["stage"] == "redis":
            answer(503, {"status": "unhealthy", "redis": "no answer within %g s" % settings.HEALTH_TIMEOUT})
        else:
            answer(503, {"status": "unhealthy",
                         "workers": "no worker answered within %g s" % settings.HEALTH_TIMEOUT})

    def pinged(shards):
        if any(result != "ok" for result in shards.values()):
            log.warning("/healthz: Redis unreachable: %s", shards)
            return answer(503, {"status": "unhealthy", "redis": shards})
        state["stage"] = "workers"
        forward()

    timer = reactor.callLater(settings.HEALTH_TIMEOUT, too_late)
    request.notifyFinish().addBoth(lambda _: timer.active() and timer.cancel())
    if hasattr(layer, "consistent_hash"):  # an asgi_redis layer, the project's or its own
        threads.deferToThread(ping, layer, settings.HEALTH_TIMEOUT).addCallback(pinged)
    else:  # runserver's in-memory layer: no Redis to ask
        pinged({})
