#!/usr/bin/env python3
"""chatbench: a load tool for the chat, against any ws:// server that speaks docs/protocol.md.

It opens R rooms x C clients (``BASE/<room>/?handle=<name>``), then has the clients send
messages and counts what comes back. Every message a client sends carries its sender, a
per-sender sequence number and the send time (``time.monotonic_ns()``, one clock for the
whole machine), ``{"message": "<sender>|<seq>|<t_send_ns>|xxxx..."}``, so each delivery
yields its latency and lets the tool count, per sender and per receiver:

    lost          expected and never received. Expected = every message to every member of
                  its room that was connected when it was sent; counting starts only once
                  every client is connected and a settle time has passed.
    duplicated    received again
    out of order  received after a later message from the same sender
    late          received after its phase was over and it had been counted lost

Given ``--pid`` of server processes it reads /proc/<pid>/stat and /status for their CPU
seconds (per delivered message) and resident memory, and it reports its own CPU, so one
can see whether the tool or the server was the bottleneck.

Modes: messages at a steady per-client rate (``--rate``, ``--duration``), stepped up by
``--step-factor`` or through ``--steps`` until a step fails (S2); one message per room
(S3); idle connections held for ``--hold`` seconds. ``--scenario`` names the standard runs
of docs/performance.md. With ``--redis-stats`` (the port of bench/redis_delay.py's counts)
each phase also reports the Redis round trips it took, per message sent.

Only the standard library and ``websockets``. Runs on one asyncio loop.
"""
import argparse
import array
import asyncio
import collections
import datetime
import json
import math
import os
import resource
import secrets
import socket
import sys
import time
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

SCENARIOS = {
    "S1": dict(rooms=1, clients=10, rate=1.0, size=100, duration=20.0),
    # Stepped: 1 msg/s per client is 1,000 deliveries/s in 10 rooms of 10.
    # Stepped: each client's rate, over 100 clients, is 200 to 3,200 sends/s (2,000 to 32,000
    # deliveries/s), until a step fails.
    "S2": dict(rooms=10, clients=10, size=100, duration=10.0, steps=(2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32)),
    # Server CPU per delivery at a load both cores can carry: 2,000 deliveries/s.
    "cpu": dict(rooms=10, clients=10, rate=2.0, size=100, duration=20.0),
    "S3": dict(rooms=100, clients=10, size=100, connect_concurrency=100, one_per_room=True),
    "idle": dict(rooms=100, clients=10, connect_concurrency=100, hold=30.0),
}

DEFAULTS = dict(
    rooms=1, clients=10, rate=1.0, size=100, duration=10.0, step_factor=None, steps=None, max_rate=1000.0,
    p99_limit_ms=100.0, one_per_room=False, hold=None, connect_concurrency=100, connect_timeout=30.0,
    settle=1.0, drain_quiet=2.0, drain_max=30.0,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- server processes, read from /proc ------------------------------------------------

def process_cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as stat:
        text = stat.read()
    # The command name may contain spaces and parentheses: fields start after the last ")".
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_bytes(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0  # a zombie has no VmRSS


def machine_busy_seconds():
    """CPU seconds all cores have spent on anything but idling, since boot."""
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def listen_overflows():
    """How many times, machine-wide, a listening socket's accept queue was full (the SYN is
    dropped and the client retries a second later); None where /proc/net/netstat lacks it."""
    with open("/proc/net/netstat") as netstat:
        lines = netstat.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            counters = dict(zip(names.split(), values.split()))
            return int(counters["ListenOverflows"]) if "ListenOverflows" in counters else None
    return None


def sample(pids, redis_stats=None):
    """CPU seconds and RSS of each server process that is still running, this tool's and
    the machine's CPU seconds, and the Redis round trips so far (bench/redis_delay.py), now."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    taken = {"at": time.monotonic(), "machine_cpu": machine_busy_seconds(),
             "tool_cpu": usage.ru_utime + usage.ru_stime, "cpu": {}, "rss": {}}
    if redis_stats:
        taken["redis"] = redis_round_trips(redis_stats)
    for pid in pids:
        try:
            taken["cpu"][pid], taken["rss"][pid] = process_cpu_seconds(pid), process_rss_bytes(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass  # it exited: the report says so
    return taken


def redis_round_trips(port):
    """The counts of bench/redis_delay.py, from its ``--stats`` port: one JSON line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        return json.loads(connection.makefile().readline())


def cpu_delta(before, after):
    """CPU seconds the server processes running at both samples spent between them."""
    return sum(after["cpu"][pid] - before["cpu"][pid] for pid in after["cpu"] if pid in before["cpu"])


# --- statistics -----------------------------------------------------------------------

def percentiles(values_ns):
    """p50/p95/p99/max in milliseconds (nearest rank), or None for no values."""
    if not values_ns:
        return None
    ordered = sorted(values_ns)

    def rank(p):
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] / 1e6

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": ordered[-1] / 1e6, "count": len(ordered)}


# --- one simulated client -------------------------------------------------------------

class Track:
    """What one receiver got from one sender. Sequence numbers <= floor are settled
    (received, or already counted lost), so ``seen`` only holds the unsettled ones."""

    __slots__ = ("floor", "top", "seen")

    def __init__(self):
        self.floor = -1
        self.top = -1
        self.seen = set()


class Client:
    """One simulated chat client: its socket, its own sends and what it received."""

    def __init__(self, index, room):
        self.index = index
        self.room = room
        self.handle = "c%d" % index
        self.ws = None
        self.refusal = None
        self.connect_ns = None
        self.closed_at = None
        self.close = None
        self.next_seq = 0
        self.tracks = {}
        self.lost = set()  # (sender, seq) counted lost, in case it turns up late
        self.receiver = None


class Tally:
    """Counts for one phase: a step of sending, a broadcast, or time between them."""

    def __init__(self, name, offered_rate=None):
        self.name = name
        self.offered_rate = offered_rate
        self.sent = []  # (sender Client, seq, t_send_ns)
        self.latencies = array.array("q")
        self.send_lag = array.array("q")
        self.delivered = self.duplicated = self.out_of_order = self.late = 0
        self.foreign = 0  # not JSON with a "type", or a message not sent by this run
        self.other_frames = collections.Counter()  # by type: welcome, presence, ...
        self.errors = collections.Counter()
        self.closes = collections.Counter()
        self.started = self.sending_done = self.last_delivery = None


# --- the benchmark --------------------------------------------------------------------

class Bench:
    def __init__(self, config):
        self.config = config
        prefix = config.room_prefix or "bench-%s" % secrets.token_hex(3)
        self.room_names = ["%s-%d" % (prefix, number) for number in range(config.rooms)]
        count = config.rooms * config.clients
        # Client k is in room k mod R, so every room fills at the same pace.
        self.clients = [Client(k, k % config.rooms) for k in range(count)]
        self.members = [[] for _ in range(config.rooms)]
        # Frames and closes while no phase runs (connecting, settling, closing) count here.
        self.outside = self.tally = Tally("outside phases")
        self.outstanding = 0
        self.all_delivered = asyncio.Event()
        self.closing = False
        self.padding = "x" * config.size
        # As a browser would send it: servers that check Origin (allowed_hosts_only) refuse none.
        self.origin = config.origin or "http" + config.url.rstrip("/")[2:]

    def url(self, client):
        return "%s/%s/?handle=%s" % (
            self.config.url.rstrip("/"), quote(self.room_names[client.room]), quote(client.handle))

    # connecting

    async def connect_all(self):
        gate = asyncio.Semaphore(self.config.connect_concurrency)
        started = time.monotonic()
        await asyncio.gather(*(self.connect_one(client, gate) for client in self.clients))
        return time.monotonic() - started

    async def connect_one(self, client, gate):
        async with gate:
            began = time.monotonic_ns()
            try:
                ws = await connect(
                    self.url(client), origin=self.origin, open_timeout=self.config.connect_timeout,
                    compression=None, proxy=None,
                    ping_interval=None, max_queue=None, close_timeout=10,
                )
            except InvalidStatus as refused:
                client.refusal = "HTTP %d" % refused.response.status_code
            except TimeoutError:
                client.refusal = "timeout after %gs" % self.config.connect_timeout
            except OSError as failed:
                client.refusal = "%s: %s" % (type(failed).__name__, failed.strerror or failed)
            except InvalidHandshake as failed:
                client.refusal = "%s: %s" % (type(failed).__name__, failed)
            else:
                client.connect_ns = time.monotonic_ns() - began
                client.ws = ws
                self.members[client.room].append(client)
                client.receiver = asyncio.create_task(self.receive(client))

    # receiving: the hot path, one call per frame

    async def receive(self, client):
        try:
            async for text in client.ws:
                self.on_frame(client, text, time.monotonic_ns())
        except ConnectionClosed:
            pass
        client.closed_at = time.monotonic_ns()
        ws = client.ws
        received = ws.protocol.close_rcvd
        # While the tool closes every socket, a close is still the server's own if it came
        # first or carries another code than the 1000 the tool sent.
        by_server = not self.closing or received is not None and (
            ws.protocol.close_rcvd_then_sent or received.code != 1000)
        client.close = {"code": ws.close_code, "reason": ws.close_reason, "by": "server" if by_server else "tool"}
        if by_server:
            self.tally.closes[ws.close_code] += 1

    def on_frame(self, client, text, now):
        tally = self.tally
        try:
            frame = json.loads(text)
            kind = frame["type"]
        except (ValueError, TypeError, KeyError):
            tally.foreign += 1
            return
        if kind != "message":
            if kind == "error":
                tally.errors[frame.get("code")] += 1
            else:
                tally.other_frames[kind] += 1
            return
        try:
            sender, seq, sent_at, _ = frame["message"].split("|", 3)
            sender, seq, sent_at = int(sender), int(seq), int(sent_at)
        except (KeyError, AttributeError, ValueError):
            tally.foreign += 1
            return
        track = client.tracks.get(sender)
        if track is None:
            track = client.tracks[sender] = Track()
        if seq <= track.floor:
            if (sender, seq) in client.lost:
                client.lost.discard((sender, seq))
                tally.late += 1
            else:
                tally.duplicated += 1
            return
        if seq in track.seen:
            tally.duplicated += 1
            return
        track.seen.add(seq)
        if seq < track.top:
            tally.out_of_order += 1
        else:
            track.top = seq
        tally.delivered += 1
        tally.latencies.append(now - sent_at)
        tally.last_delivery = now
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.all_delivered.set()

    # sending

    async def send(self, client, due_ns):
        """Send one message from ``client``, scheduled for ``due_ns`` (None: no schedule);
        False if its socket is closed."""
        if client.closed_at is not None:
            return False
        seq = client.next_seq
        client.next_seq += 1
        now = time.monotonic_ns()
        header = "%d|%d|%d|" % (client.index, seq, now)
        text = '{"message": "%s%s"}' % (header, self.padding[len(header):])
        # Counted before the await: the first delivery may arrive while send() is writing.
        receivers = sum(member.closed_at is None for member in self.members[client.room])
        record = (client, seq, now)
        self.outstanding += receivers
        # Set again by the last of these deliveries. Left set, drain() would wait on a set event,
        # which since Python 3.12 returns without yielding to the loop (asyncio.wait_for no longer
        # wraps it in a task): a busy wait in which no delivery is read.
        self.all_delivered.clear()
        self.tally.sent.append(record)
        if due_ns is not None:
            self.tally.send_lag.append(max(0, now - due_ns))
        try:
            await client.ws.send(text)
        except ConnectionClosed:
            # Never sent: nobody is to expect it.
            self.outstanding -= receivers
            self.tally.sent.remove(record)
            return False
        return True

    async def steady_sender(self, client, count, interval_ns, first_due_ns):
        for number in range(count):
            due = first_due_ns + number * interval_ns
            delay = due - time.monotonic_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            if not await self.send(client, due):
                return

    async def run_phase(self, name, offered_rate, send):
        """Start a tally, run ``send()``, wait for the deliveries, count what is missing."""
        self.tally = tally = Tally(name, offered_rate)
        self.all_delivered.clear()
        self.outstanding = 0
        before = sample(self.config.pids, self.config.redis_stats)
        tally.started = time.monotonic_ns()
        await send()
        tally.sending_done = time.monotonic_ns()
        await self.drain(tally)
        after = sample(self.config.pids, self.config.redis_stats)
        self.tally = self.outside
        return self.settle_phase(tally, before, after)

    async def drain(self, tally):
        """Wait until every expected delivery is in, or none came for ``drain_quiet`` seconds."""
        quiet_ns = int(self.config.drain_quiet * 1e9)
        give_up = tally.sending_done + int(self.config.drain_max * 1e9)
        while self.outstanding > 0:
            now = time.monotonic_ns()
            wait_until = min(max(tally.sending_done, tally.last_delivery or 0) + quiet_ns, give_up)
            if now >= wait_until:
                return
            try:
                await asyncio.wait_for(self.all_delivered.wait(), (wait_until - now) / 1e9)
            except TimeoutError:
                pass

    def settle_phase(self, tally, before, after):
        """The phase's figures. Every expected delivery not received now is lost; from here
        on, everything sent so far is settled, so a copy that still arrives counts as late."""
        expected = lost = 0
        sent_upto = {}
        for sender, seq, sent_at in tally.sent:
            sent_upto[sender.index] = seq
            for member in self.members[sender.room]:
                if member.closed_at is not None and member.closed_at <= sent_at:
                    continue
                expected += 1
                track = member.tracks.get(sender.index)
                if track is None or (seq > track.floor and seq not in track.seen):
                    lost += 1
                    member.lost.add((sender.index, seq))
        # Everything sent so far is now settled: received, or counted lost.
        for client in self.clients:
            for sender, track in client.tracks.items():
                if sender in sent_upto:
                    track.floor = sent_upto[sender]
                    track.seen = {seq for seq in track.seen if seq > track.floor}
        end = max(tally.sending_done, tally.last_delivery or 0)
        window = (end - tally.started) / 1e9
        sending = (tally.sending_done - tally.started) / 1e9
        result = {
            "phase": tally.name,
            "offered_per_client": tally.offered_rate,
            "sent": len(tally.sent),
            "sent_per_s": len(tally.sent) / sending if sending > 0 else None,
            "expected": expected,
            "delivered": tally.delivered,
            "delivered_per_s": tally.delivered / window if window > 0 else None,
            "lost": lost,
            "duplicated": tally.duplicated,
            "out_of_order": tally.out_of_order,
            "late": tally.late,
            "foreign": tally.foreign,
            "other_frames": dict(tally.other_frames),
            "errors": dict(tally.errors),
            "closes": {str(code): count for code, count in tally.closes.items()},
            "latency_ms": percentiles(tally.latencies),
            "send_lag_ms": percentiles(tally.send_lag),
            "seconds": window,
        }
        result.update(cpu_figures(before, after, tally.delivered))
        if "redis" in before:
            trips = after["redis"]["round_trips"] - before["redis"]["round_trips"]
            result["redis"] = {"round_trips": trips, "per_message": trips / len(tally.sent) if tally.sent else None,
                               "delay_ms": after["redis"]["delay_ms"]}
        return result

    # the modes

    async def steady(self, rate, duration):
        count = max(1, round(rate * duration))
        interval = int(1e9 / rate)
        senders = [client for client in self.clients if client.ws is not None]
        start = time.monotonic_ns()

        async def send():
            # Spread the clients over one interval, so the offered load is smooth.
            await asyncio.gather(*(
                self.steady_sender(client, count, interval, start + interval * number // len(senders))
                for number, client in enumerate(senders)))

        result = await self.run_phase("%g/s each" % rate, rate, send)
        result["offered_per_s"] = rate * len(senders)
        return result

    async def one_per_room(self):
        async def send():
            await asyncio.gather(*(self.send(members[0], None) for members in self.members if members))

        return await self.run_phase("one per room", None, send)

    async def close_all(self):
        self.closing = True
        open_clients = [client for client in self.clients if client.ws is not None]
        await asyncio.gather(*(client.ws.close() for client in open_clients))
        await asyncio.gather(*(client.receiver for client in open_clients))


def cpu_figures(before, after, delivered):
    """Server and tool CPU between two samples: seconds, % of one core, µs per delivery;
    and what every other process on the machine took (other benchmarks skew the figures)."""
    seconds = after["at"] - before["at"]
    tool = after["tool_cpu"] - before["tool_cpu"]
    server = cpu_delta(before, after)
    other = after["machine_cpu"] - before["machine_cpu"] - tool - server
    figures = {"other_cpu_percent": max(0.0, 100 * other / seconds) if seconds > 0 else None}
    for name, spent in (("tool", tool), ("server", server)):
        if name == "server" and not before["cpu"]:
            continue
        figures[name + "_cpu_s"] = spent
        figures[name + "_cpu_percent"] = 100 * spent / seconds if seconds > 0 else None
        figures[name + "_cpu_us_per_delivery"] = 1e6 * spent / delivered if delivered else None
    return figures


def failures(result, config):
    """Why a step fails: anything lost, a socket closed, p99 over the limit, or the offered
    rate not reached (the tool fell behind, or the server stopped reading)."""
    reasons = []
    if result["lost"]:
        reasons.append("%d lost" % result["lost"])
    if result["closes"]:
        reasons.append("closes %s" % result["closes"])
    latency = result["latency_ms"]
    if latency is None or latency["p99"] > config.p99_limit_ms:
        reasons.append("p99 %s ms > %g" % (_ms(latency, "p99"), config.p99_limit_ms))
    if result["sent_per_s"] is not None and result["sent_per_s"] < 0.95 * result["offered_per_s"]:
        reasons.append("sent %.0f/s of %.0f/s offered" % (result["sent_per_s"], result["offered_per_s"]))
    return reasons


async def hold_idle(bench, config, baseline, connected):
    """Hold the connections open, doing nothing, for ``config.hold`` seconds."""
    bench.tally = idle = Tally("idle")
    before = sample(config.pids)
    await asyncio.sleep(config.hold)
    after = sample(config.pids)
    bench.tally = bench.outside
    figures = {"seconds": after["at"] - before["at"], "closes": {str(code): count for code, count in idle.closes.items()}}
    figures.update(cpu_figures(before, after, 0))
    if config.pids:
        growth = sum(after["rss"][pid] - baseline["rss"][pid] for pid in after["rss"] if pid in baseline["rss"])
        figures["server_rss_mb"] = sum(after["rss"].values()) / 2**20
        figures["server_rss_kb_per_connection"] = growth / 1024 / connected if connected else None
    return figures


async def measure(bench, config, report, baseline, connected):
    """The mode's phases: an idle hold, one message per room, or steady (and stepped) rates."""
    phases = report["phases"]
    if config.hold is not None:
        report["idle"] = await hold_idle(bench, config, baseline, connected)
    elif config.one_per_room:
        phases.append(await bench.one_per_room())
    else:
        rates = list(config.steps or [config.rate])
        while rates:
            rate = rates.pop(0)
            result = await bench.steady(rate, config.duration)
            result["failures"] = failures(result, config)
            result["passed"] = not result["failures"]
            phases.append(result)
            if config.step_factor is not None:
                rates.append(round(rate * config.step_factor, 3))
            if not result["passed"] or not rates or rates[0] > config.max_rate:
                break
            await asyncio.sleep(config.settle)
        if config.step_factor is not None or config.steps:
            passing = [phase for phase in phases if phase["passed"]]
            best = passing[-1] if passing else None
            report["highest_passing"] = best and {
                "phase": best["phase"], "offered_per_s": best["offered_per_s"],
                "delivered_per_s": best["delivered_per_s"], "p99_ms": best["latency_ms"]["p99"]}


async def run(config):
    """Run the benchmark ``config`` describes; return the report as a dict."""
    bench = Bench(config)
    report = {
        "tool": "chatbench",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": getattr(config, "command", None),
        "config": {key: value for key, value in vars(config).items() if key != "command"},
        "rooms": bench.room_names[:3] + (["..."] if config.rooms > 3 else []),
    }
    baseline = sample(config.pids)
    overflows = listen_overflows()
    connect_seconds = await bench.connect_all()
    connected_at = sample(config.pids)
    overflows_after = listen_overflows()
    connected = [client for client in bench.clients if client.ws is not None]
    refusals = collections.Counter(client.refusal for client in bench.clients if client.refusal)
    report["connect"] = {
        "clients": len(bench.clients),
        "connected": len(connected),
        "refused": sum(refusals.values()),
        "refusals": dict(refusals),
        "seconds": connect_seconds,
        "time_ms": percentiles([client.connect_ns for client in connected]),
        # A connect of a second or more is usually a dropped SYN retried after 1 s: the
        # server's listen backlog was full.
        "over_1s": sum(client.connect_ns >= 1e9 for client in connected),
        "listen_overflows": overflows_after - overflows if overflows is not None else None,
        # CPU seconds each server process spent while the clients connected.
        "cpu_s": {pid: connected_at["cpu"][pid] - baseline["cpu"][pid] for pid in connected_at["cpu"]
                  if pid in baseline["cpu"]},
    }
    report["connect"].update(cpu_figures(baseline, connected_at, 0))
    report["server_rss_after_connect_mb"] = {
        pid: process_rss_bytes(pid) / 2**20 for pid in config.pids}
    await asyncio.sleep(config.settle)
    report["phases"] = []
    if connected:
        await measure(bench, config, report, baseline, len(connected))
    await bench.close_all()
    final = sample(config.pids)
    outside = bench.outside
    report["outside_phases"] = {
        "late": outside.late, "duplicated": outside.duplicated, "foreign": outside.foreign,
        "other_frames": dict(outside.other_frames), "errors": dict(outside.errors), "closes": {str(code): count for code, count in outside.closes.items()}}
    by_server = [client.close for client in connected if client.close["by"] == "server"]
    report["closes_by_server"] = dict(collections.Counter(str(close["code"]) for close in by_server))
    report["close_reasons"] = dict(collections.Counter(
        "%s %s" % (close["code"], close["reason"]) for close in by_server if close["reason"]))
    report["closes_at_end"] = dict(collections.Counter(
        str(client.close["code"]) for client in connected if client.close["by"] == "tool"))
    report["servers"] = [
        {"pid": pid, "rss_start_mb": baseline["rss"][pid] / 2**20, "exited": pid not in final["rss"],
         "rss_end_mb": final["rss"][pid] / 2**20 if pid in final["rss"] else None,
         "cpu_s": final["cpu"][pid] - baseline["cpu"][pid] if pid in final["cpu"] else None}
        for pid in config.pids]
    report["tool_cpu_s"] = final["tool_cpu"] - baseline["tool_cpu"]
    return report


# --- output ---------------------------------------------------------------------------

def _ms(stats, key):
    return "%.1f" % stats[key] if stats else "-"


def _num(value, pattern="%.0f"):
    return pattern % value if value is not None else "-"


def format_report(report):
    """The report as a plain-text table."""
    config = report["config"]
    lines = ["chatbench %s against %s, %s" % (
        "scenario " + config["scenario"] if config.get("scenario") else "", config["url"], report["date"])]
    c = report["connect"]
    lines.append("connect   %d of %d connected in %.2f s (%d at once); refused %d" % (
        c["connected"], c["clients"], c["seconds"], config["connect_concurrency"], c["refused"]))
    lines.append("          connect time p50 %s ms, p99 %s ms, max %s ms; %d took 1 s or more" % (
        _ms(c["time_ms"], "p50"), _ms(c["time_ms"], "p99"), _ms(c["time_ms"], "max"), c["over_1s"]))
    if c.get("cpu_s"):
        lines.append("          CPU while connecting: server %s%% of a core (%s), tool %s%%, other %s%%" % (
            _num(c.get("server_cpu_percent")), ", ".join("pid %s %.2f s" % item for item in c["cpu_s"].items()),
            _num(c.get("tool_cpu_percent")), _num(c.get("other_cpu_percent"))))
    if c["listen_overflows"]:
        lines.append("          the machine's listen queues overflowed %d times (SYNs dropped, retried after 1 s):"
                     " the server's listen backlog is too short for --connect-concurrency" % c["listen_overflows"])
    for reason, count in sorted(c["refusals"].items()):
        lines.append("          refused: %s x %d" % (reason, count))
    if report["phases"]:
        stepped = config["step_factor"] is not None or bool(config.get("steps"))
        header = ["phase", "sent/s", "deliv/s", "expected", "delivered", "lost", "dup", "ooo", "late",
                  "p50 ms", "p95 ms", "p99 ms", "max ms", "closes", "srv us/dlv", "srv CPU%", "tool CPU%", "other CPU%"]
        rows = [header + ["pass"] * stepped]
        for phase in report["phases"]:
            latency = phase["latency_ms"]
            rows.append([
                phase["phase"], _num(phase["sent_per_s"]), _num(phase["delivered_per_s"]), str(phase["expected"]),
                str(phase["delivered"]), str(phase["lost"]), str(phase["duplicated"]), str(phase["out_of_order"]),
                str(phase["late"]), _ms(latency, "p50"), _ms(latency, "p95"), _ms(latency, "p99"),
                _ms(latency, "max"), " ".join("%sx%d" % item for item in phase["closes"].items()) or "0",
                _num(phase.get("server_cpu_us_per_delivery")), _num(phase.get("server_cpu_percent")),
                _num(phase.get("tool_cpu_percent")), _num(phase.get("other_cpu_percent")),
            ] + (["yes" if phase["passed"] else "NO"] if stepped else []))
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        lines.append("")
        for row in rows:
            lines.append("  ".join(cell.rjust(width) if column else cell.ljust(width)
                                   for column, (cell, width) in enumerate(zip(row, widths))).rstrip())
        for phase in report["phases"]:
            extras = []
            if phase["errors"]:
                extras.append("error frames %s" % phase["errors"])
            if phase["foreign"]:
                extras.append("%d frames not from this run" % phase["foreign"])
            if phase["other_frames"]:
                extras.append("other frames %s" % phase["other_frames"])
            lag = phase["send_lag_ms"]
            if lag and lag["p99"] > 10:
                extras.append("sends behind schedule by p99 %.1f ms" % lag["p99"])
            if (phase.get("other_cpu_percent") or 0) > 20:
                extras.append("other processes took %.0f%% of a core: figures skewed" % phase["other_cpu_percent"])
            if phase.get("redis") and phase["redis"]["per_message"] is not None and phase["redis"]["delay_ms"]:
                extras.append("Redis round trips %(round_trips)d, %(per_message).1f per message sent, "
                              "measured delay %(delay_ms).2f ms each way" % phase["redis"])
            if phase.get("failures"):
                extras.append("fails: " + ", ".join(phase["failures"]))
            if extras:
                lines.append("  %s: %s" % (phase["phase"], "; ".join(extras)))
        if "highest_passing" in report:
            best = report["highest_passing"]
            lines.append("highest passing step: %s" % (
                "%s, %.0f deliveries/s, p99 %.1f ms" % (best["phase"], best["delivered_per_s"], best["p99_ms"])
                if best else "none"))
    if "idle" in report:
        idle = report["idle"]
        lines.append("idle      held %.0f s: server CPU %s%%, RSS %s MB, %s KB per connection; tool CPU %.1f%%; "
                     "other processes %.0f%%" % (
                         idle["seconds"], _num(idle.get("server_cpu_percent"), "%.2f"),
                         _num(idle.get("server_rss_mb"), "%.1f"), _num(idle.get("server_rss_kb_per_connection"), "%.1f"),
                         idle["tool_cpu_percent"], idle["other_cpu_percent"]))
        if idle["closes"]:
            lines.append("          closed while idle: %s" % idle["closes"])
    outside = {key: value for key, value in report["outside_phases"].items() if value}
    if outside:
        lines.append("outside the phases (connecting, settling, closing): %s" % outside)
    lines.append("")
    lines.append("closed by the server: %s" % (
        ", ".join("%s x %d" % item for item in report["closes_by_server"].items()) or "none"))
    for reason, count in report["close_reasons"].items():
        lines.append("          %s x %d" % (reason, count))
    for server in report["servers"]:
        if server["exited"]:
            lines.append("server pid %d: EXITED during the run" % server["pid"])
            continue
        lines.append("server pid %d: RSS %.1f MB at start, %.1f MB at end; %.2f CPU s in all" % (
            server["pid"], server["rss_start_mb"], server["rss_end_mb"], server["cpu_s"]))
    lines.append("tool: %.2f CPU s in all" % report["tool_cpu_s"])
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Load and count a chat server that speaks docs/protocol.md.",
        epilog="Scenarios (docs/performance.md): " + "; ".join(
            "%s: %s" % (name, ", ".join("%s=%s" % item for item in values.items()))
            for name, values in SCENARIOS.items()))
    parser.add_argument("url", help="base ws:// URL, e.g. ws://127.0.0.1:8000; clients open URL/<room>/?handle=<name>")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), help="a standard run; other options override it")
    parser.add_argument("--rooms", type=int, help="number of rooms (default 1)")
    parser.add_argument("--clients", type=int, help="clients per room (default 10)")
    parser.add_argument("--size", type=int, help="bytes of chat text per message, at least the ~30-byte header (default 100)")
    parser.add_argument("--rate", type=float, help="messages per second per client (default 1)")
    parser.add_argument("--duration", type=float, help="seconds of sending, per step (default 10)")
    parser.add_argument("--step-factor", type=float, help="step the rate up by this factor until a step fails")
    parser.add_argument("--steps", type=lambda text: [float(rate) for rate in text.split(",")],
                        help="per-client rates to step through until one fails, e.g. 2,4,8")
    parser.add_argument("--max-rate", type=float, help="stop stepping above this per-client rate (default 1000)")
    parser.add_argument("--p99-limit-ms", type=float, help="a step with a higher p99 fails (default 100)")
    parser.add_argument("--one-per-room", action="store_true", default=None, help="send one message per room, at once")
    parser.add_argument("--hold", type=float, help="idle mode: hold the connections this many seconds, send nothing")
    parser.add_argument("--connect-concurrency", type=int, help="clients connecting at once (default 100)")
    parser.add_argument("--connect-timeout", type=float, help="seconds before a connect counts as refused (default 30)")
    parser.add_argument("--settle", type=float, help="seconds between connecting and counting (default 1)")
    parser.add_argument("--drain-quiet", type=float, help="after sending, stop waiting after this many seconds without a delivery (default 2)")
    parser.add_argument("--drain-max", type=float, help="after sending, wait at most this long for deliveries (default 30)")
    parser.add_argument("--redis-stats", type=int, help="port of bench/redis_delay.py's counts: report round trips")
    parser.add_argument("--pid", dest="pids", type=int, action="append", default=[], help="a server process to measure (repeatable)")
    parser.add_argument("--origin", help="Origin header to send (default: the URL with http:// for ws://)")
    parser.add_argument("--room-prefix", help="room names are PREFIX-0, PREFIX-1, ... (default bench-<random>)")
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--wait", type=float, default=10,
                        help="seconds to wait for the server to listen, when started just before (default 10)")
    args = parser.parse_args(argv)
    settings = dict(DEFAULTS)
    settings.update(SCENARIOS.get(args.scenario, {}))
    settings.update({key: value for key, value in vars(args).items() if value is not None or key not in settings})
    return argparse.Namespace(**settings)


def raise_file_limit():
    """Each client is a file descriptor: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main(argv=None):
    config = parse_args(sys.argv[1:] if argv is None else argv)
    config.command = " ".join(["bench/chatbench.py"] + (sys.argv[1:] if argv is None else list(argv)))
    for pid in config.pids:
        if not os.path.exists("/proc/%d/stat" % pid):
            sys.exit("--pid %d: no such process" % pid)
    limit = raise_file_limit()
    if config.rooms * config.clients + 50 > limit:
        sys.exit("%d clients need more file descriptors than the limit of %d" % (config.rooms * config.clients, limit))
    wait_for_listener(config.url, config.wait)
    report = asyncio.run(run(config))
    print(format_report(report))
    if config.json:
        with open(config.json, "w") as out:
            json.dump(report, out, indent=2, ensure_ascii=False)
        print("wrote %s" % config.json)
    if report["connect"]["refused"]:
        sys.exit("%d of %d clients could not connect: the figures above are not the scenario's"
                 % (report["connect"]["refused"], report["connect"]["clients"]))


def wait_for_listener(url, seconds):
    """Until the server accepts TCP connections (a server started in the background a moment
    ago is still loading), or exit saying it never did."""
    parsed = urlsplit(url)
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((parsed.hostname, parsed.port or 80), timeout=1).close()
            return
        except OSError as error:
            if time.monotonic() > deadline:
                sys.exit("nothing listens at %s after %g s: %s" % (url, seconds, error))
            time.sleep(0.1)


if __name__ == "__main__":
    main()
