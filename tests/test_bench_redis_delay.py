"""bench/redis_delay.py, the stand-in for Redis on another host: it delays each way and counts
round trips exactly, against a real redis-server."""
import sys
import time

import redis

from bench import chatbench
from tests.servers import ROOT, Process, free_port

DELAY_MS = 2.0


def test_the_proxy_delays_each_way_and_counts_each_round_trip(redis_url, tmp_path):
    listen, stats = free_port(), free_port()
    proxy = Process("redis-delay", [sys.executable, ROOT + "/bench/redis_delay.py", "--listen", str(listen),
                                    "--to", redis_url.split("//")[1].split("/")[0], "--delay-ms", str(DELAY_MS),
                                    "--stats", str(stats)], port=listen, log_path=tmp_path / "proxy.log").start()
    try:
        client = redis.StrictRedis(port=listen)
        started = time.monotonic()
        for _ in range(5):
            assert client.ping()
        five_pings = time.monotonic() - started
        pipe = client.pipeline(transaction=False)
        for number in range(10):
            pipe.set("key-%d" % number, number)
        assert pipe.execute() == [True] * 10
        assert client.get("key-9") == b"9"
        counts = chatbench.redis_round_trips(stats)
    finally:
        proxy.stop()
    # 5 pings, the pipeline, the GET: a pipeline of 10 commands is one round trip.
    assert counts["round_trips"] == 7
    assert five_pings >= 5 * 2 * DELAY_MS / 1000
    assert DELAY_MS <= counts["delay_ms"] < DELAY_MS + 5
