"""End to end: /healthz a load balancer can trust, cluster-wide /metrics, and /status, against real
daphne, runworker, redis-server and PostgreSQL processes (docs/operations.md)."""
import asyncio
import json
import signal
import threading
import time
import urllib.error
import urllib.request

from playwright.sync_api import expect
from prometheus_client.parser import text_string_to_metric_families

from channels_example.topology import Postgres
from tests.chatclient import TIMEOUT, frames_until, join, joined, messages, run
from tests.logs import TRACEBACK, lines


def get(port, path, headers=None):
    """``(status, body, seconds taken)`` of a GET, whatever the status."""
    started = time.monotonic()
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode()
    return status, body, time.monotonic() - started


def healthy_again(port):
    """/healthz once it answers 200 again (after a fault is mended, the outside world decides when)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        status, body, _ = get(port, "/healthz")
        if status == 200:
            return json.loads(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_healthz_says_503_within_2_s_when_no_worker_answers_and_200_when_one_does(production):
    stack = production(workers=2)
    status, body, _ = get(stack.port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["database"] == "ok"
    for worker in stack.workers:
        worker.process.send_signal(signal.SIGSTOP)
    try:
        status, body, seconds = get(stack.port, "/healthz")
        print("/healthz with every worker stopped: %d in %.2f s" % (status, seconds))
        assert status == 503 and seconds < 2
        assert "no worker answered" in json.loads(body)["workers"]
    finally:
        for worker in stack.workers:
            worker.process.send_signal(signal.SIGCONT)
    assert healthy_again(stack.port)["redis"] == {"shard 0": "ok"}


def test_healthz_names_redis_when_redis_is_down(production):
    stack = production(workers=2)
    stack.redis[0].stop()
    status, body, seconds = get(stack.port, "/healthz")
    print("/healthz with Redis stopped: %d in %.2f s" % (status, seconds))
    assert status == 503 and seconds < 2
    assert "shard 0" in json.loads(body)["redis"] and json.loads(body)["redis"]["shard 0"] != "ok"
    assert lines(stack.logs(stack.daphnes), TRACEBACK) == [], "daphne failed while answering"
    stack.redis[0].start()
    healthy_again(stack.port)


def test_healthz_names_the_database_when_it_is_down(production):
    database = Postgres().start()
    try:
        stack = production(workers=2, database_url=database.create_database("health"))
        assert get(stack.port, "/healthz")[0] == 200
        database.server.stop(signal.SIGINT)
        status, body, seconds = get(stack.port, "/healthz")
        assert status == 503 and seconds < 2 and json.loads(body)["database"] != "ok"
    finally:
        database.stop()


def scrape(port, **headers):
    status, body, _ = get(port, "/metrics", headers)
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples, name, **labels):
    """The sum of a metric's samples whose labels include ``labels``."""
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and set(labels.items()) <= set(sample_labels))


def test_metrics_count_the_whole_deployment_across_two_daphnes_and_two_workers(production):
    stack = production(workers=2, daphnes=2)
    ports = [daphne.port for daphne in stack.daphnes]

    def settled(check):
        deadline = time.monotonic() + TIMEOUT
        while True:  # daphnes report once a second: the figures settle, nothing announces it
            samples = scrape(ports[0])
            if check(samples):
                return samples
            assert time.monotonic() < deadline, samples
            time.sleep(0.2)

    before = settled(lambda samples: total(samples, "chat_workers") == 2 and total(samples, "chat_daphnes") == 2)

    async def main():
        sockets = [await join(ports[number % 2], "metrics-%d" % (number % 2)).__aenter__() for number in range(6)]
        for ws in sockets:
            await joined(ws)
        for number in range(30):
            await sockets[number % 6].send("m%d" % number)
        await sockets[0].send("   ")  # an empty message: an error frame
        await frames_until(sockets[0], lambda got: sum(f["type"] == "message" for f in got) == 15
                           and any(f["type"] == "error" for f in got))
        await asyncio.gather(*(messages(ws, 15) for ws in sockets[1:]))
        during = await asyncio.get_running_loop().run_in_executor(
            None, settled, lambda samples: total(samples, "chat_connections") - total(before, "chat_connections") == 6)
        await asyncio.gather(*(ws.close() for ws in sockets))
        return during

    during = run(main())
    after = settled(lambda samples: total(samples, "chat_closes_total", code="1000") - total(
        before, "chat_closes_total", code="1000") == 6 and total(samples, "chat_connections") == 0)
    assert total(during, "chat_messages_total") - total(before, "chat_messages_total") == 30
    assert total(during, "chat_rooms") - total(before, "chat_rooms") == 2
    # Three sockets on each daphne, each counted by its own.
    assert sorted(value for (name, _), value in during.items() if name == "chat_connections") == [3, 3]
    assert total(during, "chat_errors_total", code="empty_message") - total(
        before, "chat_errors_total", code="empty_message") == 1
    assert total(during, "chat_delivery_seconds_count") - total(before, "chat_delivery_seconds_count") == 30
    assert total(after, "chat_rooms") == total(before, "chat_rooms")
    assert ("channel_layer_queue_length", (("channel", "websocket.receive"),)) in after
    assert total(after, "channel_layer_dropped_total") == 0
    assert (total(after, "chat_workers"), total(after, "chat_daphnes")) == (2, 2)


def test_metrics_answer_loopback_and_elsewhere_only_with_the_token(production):
    stack = production(workers=1, daphne_args=["--proxy-headers"], METRICS_TOKEN="scrape-me")
    assert get(stack.port, "/metrics")[0] == 200
    far = {"X-Forwarded-For": "198.51.100.7"}
    assert get(stack.port, "/metrics", far)[0] == 403
    assert get(stack.port, "/status.json", far)[0] == 403
    assert get(stack.port, "/metrics", dict(far, Authorization="Bearer wrong"))[0] == 403
    assert get(stack.port, "/metrics", dict(far, Authorization="Bearer scrape-me"))[0] == 200


def test_the_status_page_shows_the_figures_and_follows_them(production, page):
    stack = production(workers=2)
    page.goto("http://127.0.0.1:%d/status/" % stack.port)
    expect(page.locator("#workers")).to_have_text("2", timeout=TIMEOUT * 1000)
    expect(page.locator("#connections")).to_have_text("0", timeout=TIMEOUT * 1000)
    done = threading.Event()

    async def visitors(ready):
        async with join(stack.port, "watched", "ann") as ann, join(stack.port, "watched", "bob") as bob:
            await joined(ann)
            await joined(bob)
            await ann.send("hello")
            await messages(bob, 1)
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, done.wait, TIMEOUT)

    ready = threading.Event()
    holder = threading.Thread(target=lambda: asyncio.run(visitors(ready)))
    holder.start()
    try:
        assert ready.wait(TIMEOUT)
        # The page polls /status.json: what it shows follows the deployment.
        expect(page.locator("#connections")).to_have_text("2", timeout=TIMEOUT * 1000)
        expect(page.locator("#busiest tr td").first).to_have_text("watched", timeout=TIMEOUT * 1000)
        expect(page.locator("#busiest tr td").nth(2)).to_have_text("ann, bob")
        expect(page.locator("#chart polyline")).to_have_count(1, timeout=TIMEOUT * 1000)
        expect(page.locator("#clock")).to_have_text("the clock ticks")
        expect(page.locator("#store-queue")).to_have_text("0", timeout=TIMEOUT * 1000)  # ann's message, stored
    finally:
        done.set()
        holder.join(TIMEOUT)
    expect(page.locator("#connections")).to_have_text("0", timeout=TIMEOUT * 1000)


def test_a_silent_clock_is_named_by_healthz_and_the_status_page_while_the_chat_goes_on(production, page):
    stack = production(workers=1)
    page.goto("http://127.0.0.1:%d/status/" % stack.port)
    expect(page.locator("#clock")).to_have_text("the clock ticks", timeout=TIMEOUT * 1000)
    clock = stack.clocks[0].process
    clock.send_signal(signal.SIGSTOP)
    try:
        expect(page.locator("#clock")).to_contain_text("messages are not stored (run manage.py runclock)",
                                                       timeout=TIMEOUT * 1000)
        expect(page.locator("#clock-card")).to_have_attribute("data-state", "warning")
        status, body, _ = get(stack.port, "/healthz")
        assert status == 200  # a load balancer must not take daphnes out for a silent clock
        assert json.loads(body)["clock"].startswith("no clock has ticked for")

        async def chat():
            async with join(stack.port, "clockless", "ann") as ann, join(stack.port, "clockless", "bob") as bob:
                await joined(ann)
                await joined(bob)
                await ann.send("still here")
                return [frame["message"] for frame in await messages(bob, 1)]

        assert run(chat()) == ["still here"]
        expect(page.locator("#store-queue")).to_have_text("1", timeout=TIMEOUT * 1000)
    finally:
        clock.send_signal(signal.SIGCONT)
    expect(page.locator("#clock")).to_have_text("the clock ticks", timeout=TIMEOUT * 1000)
    expect(page.locator("#store-queue")).to_have_text("0", timeout=TIMEOUT * 1000)
