#!/usr/bin/env python3
"""A TCP proxy in front of Redis that adds a delay each way and counts round trips.

In production Redis runs on its own host, where every round trip costs a network's
latency; on loopback it costs almost nothing, so a benchmark on one machine hides what
a design's round trips cost. This kernel has no ``netem``; this proxy stands in for it:

    .venv/bin/python bench/redis_delay.py --listen 7001 --to 127.0.0.1:6379 --delay-ms 0.5 --stats 7002

Each chunk read on one side is written to the other ``--delay-ms`` later, in order. A
**round trip** is counted each time a client sends after Redis last answered it (a
pipeline is one round trip, a BLPOP that waits is one); ``--stats`` is a port that
answers every connection with the counts so far as one JSON line and closes:
``{"round_trips": N, "connections": N, "bytes_up": N, "bytes_down": N, "delay_ms": D,
"by_port": {port: N}}``, where ``D`` is the delay each way as measured (asked for, plus the
loop's lateness) and ``by_port`` the round trips by the client's port (bench/round_trips.py
names the process behind each).

Only the standard library; one asyncio loop, on ``select()``: epoll waits in whole
milliseconds, which would turn a 0.5 ms delay into 1 ms.
"""
import argparse
import asyncio
import collections
import json
import selectors
import time

COUNTS = collections.Counter()
BY_PORT = collections.Counter()  # round trips by the client's port: which process made them


async def _pump(reader, writer, delay, on_chunk):
    """Copy reader to writer, each chunk ``delay`` seconds after it was read, in order."""
    queue = asyncio.Queue()

    async def write_when_due():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            COUNTS["delayed_chunks"] += 1
            COUNTS["delay_us"] += int((time.monotonic() - due + delay) * 1e6)
            await writer.drain()
        writer.close()

    writing = asyncio.ensure_future(write_when_due())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            on_chunk(data)
            queue.put_nowait((time.monotonic() + delay, data))
    except ConnectionError:
        pass
    finally:
        queue.put_nowait((0, None))
    try:
        await writing
    except ConnectionError:
        pass


def serve_client(upstream_host, upstream_port, delay):
    async def handle(client_reader, client_writer):
        try:
            redis_reader, redis_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            client_writer.close()
            return
        COUNTS["connections"] += 1
        client_port = client_writer.get_extra_info("peername")[1]
        answered = [True]  # the client's next chunk starts a new round trip

        def up(data):
            if answered[0]:
                COUNTS["round_trips"] += 1
                BY_PORT[client_port] += 1
                answered[0] = False
            COUNTS["bytes_up"] += len(data)

        def down(data):
            answered[0] = True
            COUNTS["bytes_down"] += len(data)

        await asyncio.gather(_pump(client_reader, redis_writer, delay, up),
                             _pump(redis_reader, client_writer, delay, down))

    return handle


async def report(reader, writer):
    counts = {name: COUNTS[name] for name in ("round_trips", "connections", "bytes_up", "bytes_down")}
    counts["delay_ms"] = COUNTS["delay_us"] / 1000 / COUNTS["delayed_chunks"] if COUNTS["delayed_chunks"] else None
    counts["by_port"] = dict(BY_PORT)
    writer.write((json.dumps(counts) + "\n").encode())
    await writer.drain()
    writer.close()


async def main(options):
    host, port = options.to.rsplit(":", 1)
    await asyncio.start_server(serve_client(host, int(port), options.delay_ms / 1000), "127.0.0.1", options.listen)
    if options.stats:
        await asyncio.start_server(report, "127.0.0.1", options.stats)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True, help="loopback port to listen on")
    parser.add_argument("--to", required=True, help="host:port of the Redis server")
    parser.add_argument("--delay-ms", type=float, default=0.5, help="added each way (default 0.5)")
    parser.add_argument("--stats", type=int, help="loopback port that answers with the counts as JSON")
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    loop.run_until_complete(main(parser.parse_args()))
