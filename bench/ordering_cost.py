"""What per-socket ordering (channels_example/chat/ordering.py) costs, measured two ways.

1. The sequencer alone against a real redis-server: time per frame completed in
   order, and with frames completed in shuffled order by two threads.
2. End to end on the production topology (redis-server + daphne + 2 runworkers + the
   clock): one client sends a burst as fast as it can, another member of the room
   receives it; on the project's Redis layer and on asgi_redis's own (REDIS_LAYER=stock):
   the burst's duration, how many adjacent pairs of chat messages arrived out of order
   (other frames are not counted), and the workers' CPU time per message. Each burst
   goes to a room of its own.

    .venv/bin/python bench/ordering_cost.py [--burst 500] [--runs 5] [--json]

With ``--server``, only the bursts, against a server already running (scripts/run or
scripts/prod started with CHAT_RATE_LIMIT=off, or a burst is refused): ordered as that
server is, with the CPU time of the processes given with ``--pid``, if any.

    .venv/bin/python bench/ordering_cost.py --server http://127.0.0.1:8000 [--pid PID] [--burst 100]
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
from urllib.parse import urlsplit

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
# A burst that stops arriving for this long has been lost or refused.
BURST_TIMEOUT = 30


async def burst(server, count):
    """One client sends ``count`` messages as fast as it can to a room of its own on ``server``
    (``http://host:port``); another member receives them. The burst's duration, and how many
    adjacent pairs of chat messages the member received out of order."""
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    url = "%s://%s/bench-%d-%d/" % (scheme, parts.netloc, os.getpid(), next(_rooms))
    origin = "%s://%s" % (parts.scheme, parts.netloc)
    async with connect(url, origin=origin, max_queue=None) as sender, connect(url, origin=origin, max_queue=None) as member:
        refused = asyncio.ensure_future(_first_error(sender))
        started = time.perf_counter()
        for number in range(count):
            await sender.send(str(number))
        arrived = asyncio.ensure_future(_chat_messages(member, count))
        await asyncio.wait([arrived, refused], timeout=BURST_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        elapsed = time.perf_counter() - started
        refused.cancel()
        if not arrived.done():
            arrived.cancel()
            if refused.done() and not refused.cancelled():
                raise RuntimeError("the server refused the burst: %s%s" % (refused.result(), (
                    " (start it with CHAT_RATE_LIMIT=off)" if "rate_limited" in refused.result() else "")))
            raise RuntimeError("the burst of %d did not arrive within %d s" % (count, BURST_TIMEOUT))
        received = arrived.result()
    return elapsed, sum(1 for a, b in zip(received, received[1:]) if b < a)


async def _chat_messages(member, count):
    """The numbers of the next ``count`` chat messages ``member`` receives; its other frames
    (welcome, history, presence) are not messages of the burst."""
    received = []
    while len(received) < count:
        frame = json.loads(await member.recv())
        if frame["type"] == "message":
            received.append(int(frame["message"]))
    return received


async def _first_error(sender):
    """The first error frame the sender receives, as ``code: detail``."""
    while True:
        frame = json.loads(await sender.recv())
        if frame["type"] == "error":
            return "%s: %s" % (frame["code"], frame["detail"])


def bursts(server, count, runs, pids=(), settle=0):
    """``runs`` bursts of ``count`` after a warm-up one: ``(seconds, inversions, CPU seconds per message
    of the processes pids, or None)`` each. ``settle``: seconds the processes are given after each
    burst to finish its work (storing it) before their CPU time is read."""
    asyncio.run(burst(server, 10))  # warm up every worker
    results = []
    for _ in range(runs):
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        elapsed, inversions = asyncio.run(burst(server, count))
        time.sleep(settle)
        cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) / count if pids else None
        results.append((elapsed, inversions, cpu))
    return results


def summary(results, count, **about):
    """The figures of ``bursts``, as the table and --json report them."""
    times, inversions, cpu = zip(*results)
    return dict(about, burst=count, runs=len(results), median_seconds=round(statistics.median(times), 4),
                runs_out_of_order=sum(1 for number in inversions if number),
                median_inversions=statistics.median(inversions),
                worker_cpu_us_per_message=None if None in cpu else round(statistics.median(cpu) * 1e6))


def table_row(row, first_column):
    cpu = "-" if row["worker_cpu_us_per_message"] is None else "%d us" % row["worker_cpu_us_per_message"]
    return "| %s | %d | %.2f s | %d of %d | %g | %s |" % (
        first_column, row["burst"], row["median_seconds"], row["runs_out_of_order"], row["runs"],
        row["median_inversions"], cpu)


def end_to_end(layer, count, runs, folder):
    redis_port, daphne_port = topology.free_port(), topology.free_port()
    os.makedirs(folder, exist_ok=True)
    redis_server = topology.Process("redis", topology.redis_argv(redis_port, folder), port=redis_port,
                                    log_path=os.path.join(folder, "redis.log")).start()
    env = topology.production_env("redis://127.0.0.1:%d/0" % redis_port, SECRET_KEY="bench", CHAT_RATE_LIMIT="off",
                                  REDIS_LAYER=layer,
                                  SQLITE_PATH=os.path.join(folder, "db.sqlite3"), LOG_LEVEL="WARNING")
    # Chat messages are numbered and stored (history), so the database needs its tables.
    subprocess.run([sys.executable, os.path.join(topology.ROOT, "manage.py"), "migrate", "--verbosity", "0"],
                   env=env, check=True)
    processes = [topology.web(daphne_port, env, log_path=os.path.join(folder, "daphne.log"), extra_args=["-v", "0"]).start()]
    workers = [topology.worker(env, log_path=os.path.join(folder, "w%d.log" % n)).start() for n in range(2)]
    processes.append(topology.clock(env, log_path=os.path.join(folder, "clock.log")).start())
    try:
        return bursts("http://127.0.0.1:%d" % daphne_port, count, runs, [worker.pid for worker in workers])
    finally:
        for process in workers + processes + [redis_server]:
            process.stop()


HEADER = """| %s | burst | median time | runs out of order | adjacent inversions (median) | worker CPU per message |
|---|---|---|---|---|---|"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--server", help="only the bursts, against this running server: http://127.0.0.1:8000")
    parser.add_argument("--pid", type=int, action="append", default=[],
                        help="with --server: a process whose CPU time to count (runserver's, or each runworker's)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    options = parser.parse_args()
    if options.server:
        row = summary(bursts(options.server, options.burst, options.runs, options.pid), options.burst,
                      server=options.server)
        print(json.dumps({"end_to_end": [row]}) if options.json else
              "%s\n%s" % (HEADER % "server", table_row(row, options.server)))
        return
    folder = tempfile.mkdtemp(prefix="ordering-cost-")

    port = topology.free_port()
    redis_server = topology.Process("redis", topology.redis_argv(port, folder), port=port,
                                    log_path=os.path.join(folder, "redis-alone.log")).start()
    try:
        in_order, shuffled = sequencer_alone("redis://127.0.0.1:%d/0" % port, options.frames)
    finally:
        redis_server.stop()
    figures = {"sequencer_alone": {"frames": options.frames, "in_order_us_per_frame": round(in_order * 1e6),
                                   "shuffled_us_per_frame": round(shuffled * 1e6)}, "end_to_end": []}
    if not options.json:
        print("sequencer alone, %d frames: %.0f us/frame in order, %.0f us/frame shuffled over 2 threads"
              % (options.frames, in_order * 1e6, shuffled * 1e6))
        print("\n" + HEADER % "layer")
    for layer in ("project", "stock"):
        results = end_to_end(layer, options.burst, options.runs, os.path.join(folder, layer))
        row = summary(results, options.burst, layer=layer)
        figures["end_to_end"].append(row)
        if not options.json:
            print(table_row(row, layer), flush=True)
    if options.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as failed:  # a burst refused or lost, a server that did not start: say which
        sys.exit("%s: %s" % (os.path.basename(__file__), failed))
