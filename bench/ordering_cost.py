"""What per-socket ordering (channels_example/chat/ordering.py) costs, measured two ways.

1. The sequencer alone against a real redis-server: time per frame completed in
   order, and with frames completed in shuffled order by two threads.
2. End to end on the production topology (redis-server + daphne + 2 runworkers):
   one client sends a burst as fast as it can, another member of the room receives
   it; with @in_order and without (bench/settings.py, ORDERED_DELIVERY=0): the
   burst's duration, how many adjacent pairs arrived out of order, and the workers'
   CPU time per message. Each burst goes to a room of its own.

    .venv/bin/python bench/ordering_cost.py [--burst 500] [--runs 5]
"""
import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_example.settings")

from websockets.asyncio.client import connect  # noqa: E402

from channels_example import topology  # noqa: E402
from chatbench import process_cpu_seconds as cpu_seconds  # noqa: E402


def sequencer_alone(redis_url, frames):
    import django
    from channels.asgi import ChannelLayerWrapper
    from django.conf import settings

    django.setup()
    from channels import DEFAULT_CHANNEL_LAYER, channel_layers

    from channels_example.chat import ordering
    from channels_example.layers import RedisChannelLayer

    layer = RedisChannelLayer(**dict(settings.REDIS_TRANSPORT, hosts=[redis_url]))
    channel_layers.set(DEFAULT_CHANNEL_LAYER, ChannelLayerWrapper(layer, DEFAULT_CHANNEL_LAYER, []))
    ordering.deliver = lambda sends: None
    sequencer = ordering.sequencer()
    started = time.perf_counter()
    for order in range(1, frames + 1):
        sequencer.complete("bench!in-order", order, [])
    in_order = (time.perf_counter() - started) / frames

    orders = list(range(1, frames + 1))
    random.Random(1).shuffle(orders)
    halves = [orders[0::2], orders[1::2]]
    started = time.perf_counter()
    threads = [threading.Thread(target=lambda half=half: [sequencer.complete("bench!shuffled", n, []) for n in half])
               for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shuffled = (time.perf_counter() - started) / frames
    return in_order, shuffled


_rooms = itertools.count()


async def burst(port, count):
    """One client sends ``count`` messages as fast as it can to a room of its own; another member receives
    them. The burst's duration, and how many adjacent pairs the member received out of order."""
    url = "ws://127.0.0.1:%d/bench-%d-%d/" % (port, os.getpid(), next(_rooms))
    origin = "http://127.0.0.1:%d" % port
    async with connect(url, origin=origin, max_queue=None) as sender, connect(url, origin=origin, max_queue=None) as member:
        started = time.perf_counter()
        for number in range(count):
            await sender.send(str(number))
        received = []
        while len(received) < count:
            frame = json.loads(await member.recv())
            if frame["type"] == "message":
                received.append(int(frame["message"]))
        elapsed = time.perf_counter() - started
    return elapsed, sum(1 for a, b in zip(received, received[1:]) if b < a)


def end_to_end(ordered, count, runs, folder):
    redis_port, daphne_port = topology.free_port(), topology.free_port()
    os.makedirs(folder, exist_ok=True)
    redis_server = topology.Process("redis", topology.redis_argv(redis_port, folder), port=redis_port,
                                    log_path=os.path.join(folder, "redis.log")).start()
    env = topology.production_env("redis://127.0.0.1:%d/0" % redis_port, SECRET_KEY="bench", CHAT_RATE_LIMIT="off",
                                  DJANGO_SETTINGS_MODULE="bench.settings", ORDERED_DELIVERY="1" if ordered else "0",
                                  SQLITE_PATH=os.path.join(folder, "db.sqlite3"), LOG_LEVEL="WARNING")
    # Chat messages are numbered and stored (history), so the database needs its tables.
    subprocess.run([sys.executable, os.path.join(topology.ROOT, "manage.py"), "migrate", "--verbosity", "0"],
                   env=env, check=True)
    processes = [topology.web(daphne_port, env, log_path=os.path.join(folder, "daphne.log"), extra_args=["-v", "0"]).start()]
    workers = [topology.worker(env, log_path=os.path.join(folder, "w%d.log" % n)).start() for n in range(2)]
    try:
        asyncio.run(burst(daphne_port, 10))  # warm up both workers
        results = []
        for _ in range(runs):
            cpu_before = sum(cpu_seconds(worker.pid) for worker in workers)
            elapsed, inversions = asyncio.run(burst(daphne_port, count))
            cpu = sum(cpu_seconds(worker.pid) for worker in workers) - cpu_before
            results.append((elapsed, inversions, cpu / count))
        return results
    finally:
        for process in workers + processes + [redis_server]:
            process.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=5000)
    options = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="ordering-cost-")

    port = topology.free_port()
    redis_server = topology.Process("redis", topology.redis_argv(port, folder), port=port,
                                    log_path=os.path.join(folder, "redis-alone.log")).start()
    try:
        in_order, shuffled = sequencer_alone("redis://127.0.0.1:%d/0" % port, options.frames)
    finally:
        redis_server.stop()
    print("sequencer alone, %d frames: %.0f us/frame in order, %.0f us/frame shuffled over 2 threads"
          % (options.frames, in_order * 1e6, shuffled * 1e6))

    print("\n| @in_order | burst | median time | runs out of order | adjacent inversions (median) | worker CPU per message |")
    print("|---|---|---|---|---|---|")
    for ordered in (False, True):
        results = end_to_end(ordered, options.burst, options.runs, os.path.join(folder, str(int(ordered))))
        times, inversions, cpu = zip(*results)
        print("| %d | %d | %.2f s | %d of %d | %d | %.0f us |" % (
            ordered, options.burst, statistics.median(times), sum(1 for n in inversions if n), options.runs,
            statistics.median(inversions), statistics.median(cpu) * 1e6))


if __name__ == "__main__":
    main()
