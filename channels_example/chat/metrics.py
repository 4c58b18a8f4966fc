"""The chat's figures, counted where they happen and kept where every process can read them.

A scrape of /metrics (channels_example.monitoring) must count the whole deployment, every
daphne and worker on every host, not the one process that answers it. So the counts live
in Redis, on every shard (each summed at the scrape), written at no extra round trip
where possible:

* chat messages and the time from daphne receiving a frame to the room's fan-out: in the
  Lua step that numbers the message (history.py), on the room's shard;
* rooms with members: in the Lua steps of presence (presence.py);
* error frames a worker sends: one HINCRBY each (they are rare);
* daphne's open sockets, closes by code and the error frames daphne sends itself
  (rate_limited): kept in daphne and written once a second (channels_example.interface);
* messages per second over the last ten minutes: a sample a second, taken by whichever
  worker handles that second's chat.sweep;
* when a clock (channels_example.clock) last ticked, written by the clock once a second.

Under runserver, one process, they live in its memory.
"""
import threading
import time

from channels import DEFAULT_CHANNEL_LAYER, channel_layers

from channels_example.backends.shards import PerDeployment
from channels_example.chat.processes import DAPHNES, WORKERS, processes

PREFIX = "channels_example:metrics:"
MESSAGES, LATENCY, LATENCY_SUM, ROOMS = PREFIX + "messages", PREFIX + "latency", PREFIX + "latency-sum", PREFIX + "rooms"
ERRORS, CLOSES, CONNECTIONS, SAMPLES = PREFIX + "errors", PREFIX + "closes", PREFIX + "connections", PREFIX + "samples"
CLOCK = PREFIX + "clock"  # when a clock (any) last ticked
SAMPLE_LOCK = PREFIX + "sampled"
# Seconds from daphne receiving a frame to the room's fan-out (upper bounds of the buckets).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SAMPLES_KEPT = 600


def latency_bucket(seconds):
    """The histogram bucket a latency falls in: its upper bound as Prometheus writes it."""
    return next(("%g" % bound for bound in LATENCY_BUCKETS if seconds <= bound), "+Inf")


def count_error(code):
    """A worker sent an error frame with this code."""
    counters().add(ERRORS, {code: 1})


def report_daphne(daphne, connections, counts):
    """From a daphne, once a second: its open sockets, and what it counted since (``{key: {label: n}}``)."""
    counters().report(daphne, connections, counts)


def clock_ticked(clock):
    """From each clock (channels_example.clock), once a second: it is ticking."""
    counters().clock(clock, time.time())


def read_clock():
    """Seconds since a clock last ticked, or None when none has."""
    last_tick = counters().last_tick()
    return None if last_tick is None else round(max(0.0, time.time() - last_tick), 1)


def sample():
    """Keep the messages counted so far, once a second (any number of workers may call this)."""
    counters().sample()


def read():
    """Every figure of the deployment now (see channels_example.monitoring for their meaning)."""
    layer = channel_layers[DEFAULT_CHANNEL_LAYER]
    figures = counters().read()
    figures["clock_seconds"] = read_clock()
    daphnes, workers = processes().alive(DAPHNES), processes().alive(WORKERS)
    figures["daphnes"], figures["workers"] = len(daphnes), len(workers)
    if isinstance(counters(), RedisCounters):
        figures["connections"] = {name: count for name, count in figures["connections"].items() if name in daphnes}
    queues = ["websocket.connect", "websocket.receive", "websocket.disconnect", "http.request",
              "chat.store", "chat.sweep"] + [name for name in daphnes if name.endswith("!")]
    # The ASGI statistics extension, where the layer has it (asgi_redis's, the project's).
    figures["queues"] = {channel: layer.channel_statistics(channel)["messages_pending"] for channel in queues} \
        if "statistics" in layer.extensions else {}
    figures["dropped"] = layer.dropped_total() if hasattr(layer, "dropped_total") else getattr(layer, "dropped", 0)
    return figures


class LocalCounters:
    """In this process's memory: for runserver."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {ERRORS: {}, CLOSES: {}, LATENCY: {}}
        self._totals = {MESSAGES: 0, LATENCY_SUM: 0.0}
        self._rooms, self._connections, self._samples, self._clock = set(), {}, [], None

    def add(self, key, counts):
        with self._lock:
            for label, count in counts.items():
                self._counts[key][label] = self._counts[key].get(label, 0) + count

    def message(self, room_name, latency):
        with self._lock:
            self._totals[MESSAGES] += 1
            if latency is not None:
                bucket = latency_bucket(latency)
                self._counts[LATENCY][bucket] = self._counts[LATENCY].get(bucket, 0) + 1
                self._totals[LATENCY_SUM] += latency

    def room(self, room_name, occupied):
        with self._lock:
            (self._rooms.add if occupied else self._rooms.discard)(room_name)

    def report(self, daphne, connections, counts):
        for key, labels in counts.items():
            self.add(key, labels)
        with self._lock:
            self._connections[daphne] = connections

    def clock(self, clock, now):
        with self._lock:
            self._clock = now

    def sample(self):
        with self._lock:
            now = int(time.time())
            if not self._samples or self._samples[-1][0] < now:
                self._samples.append((now, self._totals[MESSAGES]))
                del self._samples[:-SAMPLES_KEPT]

    def read(self):
        with self._lock:
            return {"messages": self._totals[MESSAGES], "latency": dict(self._counts[LATENCY]),
                    "latency_sum": self._totals[LATENCY_SUM], "rooms": sorted(self._rooms),
                    "errors": dict(self._counts[ERRORS]), "closes": dict(self._counts[CLOSES]),
                    "connections": dict(self._connections), "samples": list(self._samples)}

    def last_tick(self):
        with self._lock:
            return self._clock


class RedisCounters:
    """In Redis, on every shard; a read sums the shards."""

    def __init__(self, shards):
        self.shards = shards

    def add(self, key, counts):
        pipe = self.shards.client(key).pipeline(transaction=False)
        for label, count in counts.items():
            pipe.hincrby(key, label, count)
        pipe.execute()

    def report(self, daphne, connections, counts):
        pipe = self.shards.client(CONNECTIONS).pipeline(transaction=False)
        pipe.hset(CONNECTIONS, daphne, connections)
        for key, labels in counts.items():
            for label, count in labels.items():
                pipe.hincrby(key, label, count)
        pipe.execute()

    def clock(self, clock, now):
        self.shards.client(CLOCK).set(CLOCK, now)

    def sample(self):
        client = self.shards.client(SAMPLES)
        if client.set(SAMPLE_LOCK, 1, nx=True, px=900):
            client.pipeline().lpush(SAMPLES, "%d %d" % (int(time.time()), self._messages())).ltrim(
                SAMPLES, 0, SAMPLES_KEPT - 1).execute()

    def read(self):
        layer = self.shards.layer
        figures = {"messages": 0, "latency": {}, "latency_sum": 0.0, "rooms": set(), "errors": {}, "closes": {},
                   "connections": {}}
        for index in range(layer.ring_size):
            shard = layer.connection(index)
            messages, latency, latency_sum, rooms, errors, closes, connections = (
                shard.pipeline(transaction=False).get(MESSAGES).hgetall(LATENCY).get(LATENCY_SUM).smembers(ROOMS)
                .hgetall(ERRORS).hgetall(CLOSES).hgetall(CONNECTIONS).execute())
            figures["messages"] += int(messages or 0)
            figures["latency_sum"] += float(latency_sum or 0)
            figures["rooms"] |= {room.decode("utf-8") for room in rooms}
            for name, counts in (("latency", latency), ("errors", errors), ("closes", closes)):
                for label, count in counts.items():
                    label = label.decode("utf-8")
                    figures[name][label] = figures[name].get(label, 0) + int(count)
            for daphne, count in connections.items():
                figures["connections"][daphne.decode("utf-8")] = int(count)
        figures["rooms"] = sorted(figures["rooms"])
        samples = self.shards.client(SAMPLES).lrange(SAMPLES, 0, -1)
        figures["samples"] = [tuple(int(part) for part in item.split()) for item in reversed(samples)]
        return figures

    def last_tick(self):
        last_tick = self.shards.client(CLOCK).get(CLOCK)
        return None if last_tick is None else float(last_tick)

    def _messages(self):
        layer = self.shards.layer
        return sum(int(layer.connection(index).get(MESSAGES) or 0) for index in range(layer.ring_size))


counters = PerDeployment(LocalCounters, RedisCounters)
