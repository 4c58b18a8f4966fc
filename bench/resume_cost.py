"""What a resume (?since=N, docs/history.md) costs: the time from opening the socket to having the
history frame, and the frame's size, for a client that missed RESUME_LIMIT messages.

    .venv/bin/python bench/resume_cost.py [--missed 1000] [--runs 5]

Starts the production topology (redis-server, daphne, 2 runworkers, SQLite) on free loopback
ports, fills a room with ``--missed`` messages of 100 and of 2,000 characters, and resumes
from before the first of them: from Redis, and again after deleting the room's recent list,
from the database. Everything it started is stopped by PID.
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import redis  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from channels_example import topology  # noqa: E402


async def fill(port, room, count, size):
    origin = "http://127.0.0.1:%d" % port
    async with connect("ws://127.0.0.1:%d/%s/" % (port, room), origin=origin, max_queue=None) as talker:
        await talker.recv(), await talker.recv()
        for start in range(0, count, 200):
            for number in range(start, min(start + 200, count)):
                await talker.send("%05d" % number + "x" * (size - 5))
            echoed = 0
            while echoed < min(200, count - start):
                echoed += json.loads(await talker.recv())["type"] == "message"


async def resume(port, room):
    origin = "http://127.0.0.1:%d" % port
    started = time.perf_counter()
    async with connect("ws://127.0.0.1:%d/%s/?since=0" % (port, room), origin=origin, max_queue=None,
                       max_size=None) as ws:
        await ws.recv()
        text = await ws.recv()
        elapsed = time.perf_counter() - started
    frame = json.loads(text)
    return elapsed, len(text.encode("utf-8")), len(frame["messages"]), frame["complete"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--missed", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="resume-cost-")
    redis_port, port = topology.free_port(), topology.free_port()
    started = [topology.Process("redis", topology.redis_argv(redis_port, folder), port=redis_port,
                                log_path=os.path.join(folder, "redis.log")).start()]
    env = topology.production_env("redis://127.0.0.1:%d/0" % redis_port, SECRET_KEY="bench", CHAT_RATE_LIMIT="off",
                                  SQLITE_PATH=os.path.join(folder, "db.sqlite3"), LOG_LEVEL="WARNING")
    subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "migrate", "-v", "0"], env=env, check=True)
    started.append(topology.web(port, env, log_path=os.path.join(folder, "daphne.log"), extra_args=["-v", "0"]).start())
    started += [topology.worker(env, log_path=os.path.join(folder, "w%d.log" % n)).start() for n in range(2)]
    started.append(topology.clock(env, log_path=os.path.join(folder, "clock.log")).start())
    client = redis.StrictRedis(port=redis_port)
    try:
        print("| messages | from | time to the history frame (median of %d) | frame size |" % options.runs)
        print("|---|---|---|---|")
        for size in (100, 2000):
            room = "resume-%d" % size
            asyncio.run(fill(port, room, options.missed, size))
            time.sleep(2)  # the workers store the room off the delivery path
            for source in ("Redis", "the database"):
                if source == "the database":
                    for key in client.scan_iter("channels_example:room:chat-%s:recent" % room):
                        client.delete(key)
                runs = [asyncio.run(resume(port, room)) for _ in range(options.runs)]
                elapsed, size_bytes, count, complete = zip(*runs)
                assert set(count) == {options.missed} and all(complete)
                print("| %d × %d characters | %s | %.1f ms | %.0f KB |" % (
                    options.missed, size, source, statistics.median(elapsed) * 1000, size_bytes[0] / 1024))
    finally:
        for process in reversed(started):
            process.stop()


if __name__ == "__main__":
    main()
