"""Operations' pages on the workers' side: /healthz, /metrics (Prometheus) and /status.

Every figure counts the whole deployment, read at each request from where the processes
keep them (channels_example.chat.metrics): every daphne and worker on every host, not the
process that answers. docs/operations.md says what each means and what to alert on.

    chat_connections{daphne}            gauge: open sockets on each live daphne
    chat_rooms                          gauge: rooms with at least one member
    chat_messages_total                 counter: chat messages delivered to their rooms
    chat_errors_total{code}             counter: error frames sent (by workers and daphnes)
    chat_closes_total{code}             counter: sockets closed, by close code
    chat_delivery_seconds               histogram: daphne receiving a frame -> the room's fan-out
    channel_layer_queue_length{channel} gauge: messages waiting on each channel, all shards
    channel_layer_dropped_total         counter: Group sends dropped for a full channel
    chat_store_queue_length             gauge: chat messages waiting to be stored, all shards
    chat_workers, chat_daphnes          gauge: processes alive by heartbeat
    chat_clock_seconds                  gauge: seconds since a clock last ticked (absent: never)

No room names as labels: their number has no bound. /metrics and /status answer loopback
clients, and elsewhere only with METRICS_TOKEN ("Authorization: Bearer <token>"); /status
also answers a signed-in staff user.
"""
import hmac
import ipaddress
import os

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from channels_example.backends.shards import ping
from channels_example.chat import history, metrics, presence
from channels_example.chat.rooms import Room

BUSIEST_ROOMS = 10


def healthz(request):
    """The worker's half of /healthz (daphne's half is channels_example.interface.health)."""
    layer = channel_layers[DEFAULT_CHANNEL_LAYER]
    body = {"status": "ok", "worker": "%s pid %d" % (os.uname().nodename, os.getpid())}
    body["redis"] = ping(layer, settings.HEALTH_TIMEOUT) if hasattr(layer, "consistent_hash") else "none (in-memory layer)"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["database"] = "ok"
    except Exception as error:  # any failure of the database is the answer
        body["database"] = "%s: %s" % (type(error).__name__, error)
    body["clock"] = clock_state(metrics.read_clock())
    healthy = body["database"] == "ok" and (not isinstance(body["redis"], dict)
                                            or all(result == "ok" for result in body["redis"].values()))
    if not healthy:
        body["status"] = "unhealthy"
    return JsonResponse(body, status=200 if healthy else 503)


def deployment_figures():
    """chat.metrics' figures, and how many chat messages wait to be stored."""
    figures = metrics.read()
    figures["store_queue"] = history.recent().waiting()
    return figures


def clock_state(seconds):
    """What /healthz and /status say of the clock. A silent clock stops storing and sweeping, not the chat:
    /healthz stays 200 (a load balancer must not take daphnes out for it) and says so."""
    if seconds is None:
        return "no clock has ticked yet: run manage.py runclock (the Procfile's clock)"
    if seconds > settings.CLOCK_SILENT_SECONDS:
        return "no clock has ticked for %.0f s: history is not being stored; run manage.py runclock" % seconds
    return "ok"


def allowed(request, staff=False):
    """Loopback, the token, or (``staff``) a signed-in staff user."""
    token = settings.METRICS_TOKEN
    sent = request.META.get("HTTP_AUTHORIZATION", "")
    if token and hmac.compare_digest(sent.encode("utf-8"), ("Bearer " + token).encode("utf-8")):
        return True
    if staff and request.user.is_authenticated and request.user.is_staff:
        return True
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def prometheus(request):
    """/metrics, in Prometheus' text format."""
    if not allowed(request):
        return HttpResponseForbidden("metrics answer loopback clients, or a scraper with METRICS_TOKEN\n")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Figures(deployment_figures()))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class Figures:
    """The deployment's figures as Prometheus metric families (a collector for one scrape)."""

    def __init__(self, figures):
        self.figures = figures

    def collect(self):
        figures = self.figures
        connections = GaugeMetricFamily("chat_connections", "Open sockets on each live daphne", labels=["daphne"])
        for daphne, count in sorted(figures["connections"].items()):
            connections.add_metric([daphne], count)
        yield connections
        yield GaugeMetricFamily("chat_rooms", "Rooms with at least one member", value=len(figures["rooms"]))
        yield CounterMetricFamily("chat_messages", "Chat messages delivered to their rooms", value=figures["messages"])
        for name, about, counts in (("chat_errors", "Error frames sent, by code", figures["errors"]),
                                    ("chat_closes", "Sockets closed, by close code", figures["closes"])):
            family = CounterMetricFamily(name, about, labels=["code"])
            for code, count in sorted(counts.items()):
                family.add_metric([code], count)
            yield family
        buckets, total = [], 0
        for bound in [("%g" % bound) for bound in metrics.LATENCY_BUCKETS] + ["+Inf"]:
            total += figures["latency"].get(bound, 0)
            buckets.append((bound, total))
        yield HistogramMetricFamily("chat_delivery_seconds", "From daphne receiving a frame to the room's fan-out",
                                    buckets=buckets, sum_value=figures["latency_sum"])
        queues = GaugeMetricFamily("channel_layer_queue_length", "Messages waiting on a channel, all shards",
                                   labels=["channel"])
        for channel, length in sorted(figures["queues"].items()):
            queues.add_metric([channel], length)
        yield queues
        yield CounterMetricFamily("channel_layer_dropped", "Group sends dropped for a full channel",
                                  value=figures["dropped"])
        yield GaugeMetricFamily("chat_store_queue_length", "Chat messages waiting to be stored, all shards",
                                value=figures["store_queue"])
        yield GaugeMetricFamily("chat_workers", "Workers alive by heartbeat", value=figures["workers"])
        yield GaugeMetricFamily("chat_daphnes", "daphne processes alive by heartbeat", value=figures["daphnes"])
        if figures["clock_seconds"] is not None:
            yield GaugeMetricFamily("chat_clock_seconds", "Seconds since a clock last ticked",
                                    value=figures["clock_seconds"])


def status(request):
    """/status: the figures at a glance, for staff (or loopback); the page reads status.json."""
    if not allowed(request, staff=True):
        return HttpResponseForbidden("the status page is for staff\n")
    return render(request, "status.html")


def status_json(request):
    if not allowed(request, staff=True):
        return HttpResponseForbidden("the status page is for staff\n")
    figures = deployment_figures()
    handles = {name: presence.members().handles(Room(name)) for name in figures["rooms"][:1000]}
    busiest = [{"room": name, "members": len(handles[name]), "handles": sorted(handles[name])[:20]}
               for name in sorted(handles, key=lambda name: -len(handles[name]))[:BUSIEST_ROOMS]]
    return JsonResponse({
        "connections": figures["connections"], "rooms": len(figures["rooms"]), "busiest": busiest,
        "messages": figures["messages"], "samples": figures["samples"], "queues": figures["queues"],
        "dropped": figures["dropped"], "workers": figures["workers"], "daphnes": figures["daphnes"],
        "errors": figures["errors"], "closes": figures["closes"], "clock_seconds": figures["clock_seconds"],
        "store_queue": figures["store_queue"],
        "clock": clock_state(figures["clock_seconds"]),
        "clock_silent_seconds": settings.CLOCK_SILENT_SECONDS,
    })
