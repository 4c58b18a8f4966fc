"""How many Redis round trips one chat message (and one connect) costs, and in which process.

    .venv/bin/python bench/round_trips.py [--target project] [--messages 200] [--members 10]
                                          [--connects 100] [--env NAME=VALUE]

Starts the target as bench/compare.py does, with Redis behind bench/redis_delay.py (no
delay unless ``--delay-ms``), which counts round trips by the client's port; the ports
are traced to the processes that hold them (/proc). One room of ``--members`` clients
then sits idle for ``--idle`` seconds (heartbeats, sweeps and figures run all the time:
their rate is measured), and then one client sends ``--messages`` messages one at a time,
each sent once the previous one reached every member. A process's round trips per
message are those it made while the messages went, less its idle rate over that time.
With ``--connects``, ``--connects`` more clients then join the room one at a time, each once
the previous one has its history, and are counted the same way per connect.
"""
import argparse
import asyncio
import collections
import json
import os
import re
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402
from chatbench import redis_round_trips  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402


def ports_of(processes):
    """``{local port: process name}`` for the TCP connections these processes hold."""
    inodes = {}
    for process in processes:
        for fd in os.listdir("/proc/%d/fd" % process.pid):
            try:
                found = re.match(r"socket:\[(\d+)\]", os.readlink("/proc/%d/fd/%s" % (process.pid, fd)))
            except OSError:
                continue
            if found:
                inodes[found.group(1)] = process.name
    ports = {}
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports[int(fields[1].split(":")[1], 16)] = inodes[fields[9]]
    return ports


def by_process(stats, ports):
    counts = collections.Counter()
    for port, trips in stats["by_port"].items():
        counts[ports.get(int(port), "other")] += trips
    return counts


async def chat(port, members, messages, connects, idle, stats_port, processes):
    """Round trips by process per chat message, and per connect (with ``connects``), less the idle
    rate; and the idle rate per second."""
    base = "ws://127.0.0.1:%d/round-trips-%d/" % (port, os.getpid())
    origin = "http://127.0.0.1:%d" % port

    async def joined(handle):
        ws = await connect(base + "?handle=" + handle, origin=origin)
        while json.loads(await ws.recv())["type"] != "history":
            pass
        return ws

    sockets = [await joined("m%d" % number) for number in range(members)]
    await asyncio.sleep(1)
    before_idle = redis_round_trips(stats_port)
    await asyncio.sleep(idle)
    after_idle = redis_round_trips(stats_port)
    ports = ports_of(processes)
    idle_rate = {name: trips / idle for name, trips in (by_process(after_idle, ports) - by_process(
        before_idle, ports)).items()}

    async def per_action(act, count, settle):
        """Round trips by process per ``act()``, done ``count`` times one after the other; what it
        leaves to do off its path (storing, the join's events) has ``settle`` seconds."""
        before, started = redis_round_trips(stats_port), time.monotonic()
        for number in range(count):
            await act(number)
        await asyncio.sleep(settle)
        took, made = time.monotonic() - started, by_process(redis_round_trips(stats_port), ports_of(processes))
        return {name: (trips - idle_rate.get(name, 0) * took) / count
                for name, trips in (made - by_process(before, ports)).items()}

    async def say(number):
        await sockets[number % members].send(json.dumps({"message": "round trip %d" % number}))
        for ws in sockets:
            while json.loads(await ws.recv())["type"] != "message":
                pass

    async def join(number):
        sockets.append(await joined("j%d" % number))

    per_message = await per_action(say, messages, 0.5)  # the storing, off the delivery path, is theirs too
    per_connect = await per_action(join, connects, 0.5) if connects else {}
    for ws in sockets:
        await ws.close()
    return per_message, per_connect, idle_rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="project")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--connects", type=int, default=0, help="then connect this many more, one at a time")
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the target's processes")
    options = parser.parse_args()
    env = dict(pair.split("=", 1) for pair in options.env)
    target = compare.Target(options.target, tempfile.mkdtemp(prefix="round-trips-"), options.delay_ms, env)
    try:
        port, _, _ = target.start()
        servers = [process for process in target.processes if process.name not in ("redis", "redis-delay")]
        per_message, per_connect, idle_rate = asyncio.run(chat(
            port, options.members, options.messages, options.connects, options.idle, target.redis_stats, servers))
    finally:
        target.stop()
    print("%s%s: Redis round trips per chat message to a room of %d (%d messages, one at a time)%s" % (
        options.target, "".join(" " + pair for pair in options.env), options.members, options.messages,
        ", and per connect (%d, one at a time)" % options.connects if options.connects else ""))
    columns = [("per message", per_message)] + ([("per connect", per_connect)] if options.connects else [])
    columns.append(("idle, per second", idle_rate))
    print("\n| process | %s |\n|%s" % (" | ".join(title for title, _ in columns), "---|" * (len(columns) + 1)))
    for name in sorted(set().union(*(counts for _, counts in columns))):
        print("| %s | %s |" % (name, " | ".join("%.1f" % counts.get(name, 0) for _, counts in columns)))
    print("| all | %s |" % " | ".join("%.1f" % sum(counts.values()) for _, counts in columns))


if __name__ == "__main__":
    main()
