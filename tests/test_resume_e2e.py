"""End to end: a client that reconnects with ?since=<seq> gets exactly what it missed, then the live
stream, with no gap and no duplicate (docs/history.md), against real daphne, runworker and
redis-server processes."""
import asyncio
import signal
import time

import pytest
import redis
from django.conf import settings

from channels_example.chat.rooms import Room
from websockets.asyncio.client import connect

from tests.chatclient import TIMEOUT, frames_until, join, joined, messages, run


async def say(sender, texts, chunk=200):
    """Send ``texts`` as fast as the room takes them (the echo every ``chunk``); the last seq."""
    last = None
    for start in range(0, len(texts), chunk):
        for text in texts[start:start + chunk]:
            await sender.send(text)
        last = (await messages(sender, len(texts[start:start + chunk]), timeout=120))[-1]["seq"]
    return last


async def talk_then_miss(port, room, missed, listener_port=None):
    """A talker and a listener; the listener leaves after seq 5 and the talker says ``missed`` more.
    ``(talker, the seq the listener showed last)``; the talker stays open."""
    talker = await join(port, room, "talker").__aenter__()
    await joined(talker)
    async with join(listener_port or port, room, "listener") as listener:
        await joined(listener)
        shown = await say(talker, ["before %d" % n for n in range(5)])
        await messages(listener, 5)
    await say(talker, ["missed %d" % n for n in range(missed)])
    return talker, shown


@pytest.mark.parametrize("missed", [20, 120, 2000])
def test_a_listener_resumes_with_exactly_what_it_missed_then_live(production, missed):
    stack = production(workers=2)

    async def main():
        talker, shown = await talk_then_miss(stack.port, "resume", missed)
        async with join(stack.port, "resume", since=shown) as back:
            _, history = await joined(back)
            await talker.send("after")
            live = await messages(back, 1)
        await talker.close()
        return shown, history, live

    shown, history, live = run(main())
    seqs = [item["seq"] for item in history["messages"]]
    upto = shown + missed
    assert (history["since"], history["upto"]) == (shown, upto)
    if missed <= settings.RESUME_LIMIT:
        assert history["complete"] is True and seqs == list(range(shown + 1, upto + 1))
    else:
        assert history["complete"] is False and seqs == list(range(upto - settings.RESUME_LIMIT + 1, upto + 1))
    assert history["messages"][-1]["message"] == "missed %d" % (missed - 1)
    assert [(frame["seq"], frame["message"]) for frame in live] == [(upto + 1, "after")]


def test_while_others_keep_sending_a_resume_gets_every_message_once_in_order(production):
    stack = production(workers=2)
    senders, each = 3, 300

    async def sender(number, go):
        async with join(stack.port, "busy", "s%d" % number) as ws:
            await joined(ws)
            await go.wait()
            for count in range(each):
                await ws.send("s%d:%d" % (number, count))
                await asyncio.sleep(0.005)

    async def main():
        async with join(stack.port, "busy", "watcher") as watcher:
            await joined(watcher)
            async with join(stack.port, "busy", "listener") as listener:
                await joined(listener)
                go = asyncio.Event()
                sending = [asyncio.ensure_future(sender(number, go)) for number in range(senders)]
                await frames_until(listener, lambda got: sum(f["type"] == "presence" for f in got) == senders)
                go.set()
                shown = (await messages(listener, 100))[-1]["seq"]
            # Gone: the room says more before the listener is back (the watcher hears it).
            await frames_until(watcher, lambda got: got and got[-1].get("seq", 0) >= shown + 3)
            total = senders * each
            # Reconnect while the room is busy: what was missed, and what comes meanwhile, all once.
            async with join(stack.port, "busy", since=shown) as back:
                _, history = await joined(back)
                live = await frames_until(back, lambda got: got and got[-1].get("seq") == total, timeout=120)
            await asyncio.gather(*sending)
        return shown, history, [frame for frame in live if frame["type"] == "message"]

    shown, history, live = run(main())
    seqs = [item["seq"] for item in history["messages"]] + [frame["seq"] for frame in live]
    print("resumed after %d, %d from the resume, %d live" % (shown, len(history["messages"]), len(live)))
    assert seqs == list(range(shown + 1, senders * each + 1))
    assert live and history["messages"], "the resume should have met messages sent meanwhile"


def test_a_resume_on_another_daphne_after_kill_9_of_its_own(production):
    stack = production(workers=2, daphnes=2)
    first, second = stack.daphnes

    async def main():
        talker = await join(second.port, "moved", "talker").__aenter__()
        await joined(talker)
        listener = await join(first.port, "moved", "listener").__aenter__()
        await joined(listener)
        shown = await say(talker, ["before %d" % n for n in range(5)])
        await messages(listener, 5)
        first.stop(signal.SIGKILL)
        await asyncio.wait_for(listener.wait_closed(), TIMEOUT)
        last = await say(talker, ["while gone %d" % n for n in range(30)])
        # Under another name: the killed daphne's socket keeps "listener" until the sweep, and a
        # client without a session cookie cannot show it is the same person (docs/accounts.md).
        async with join(second.port, "moved", since=shown) as back:
            _, history = await joined(back)
        await talker.close()
        return shown, last, history

    shown, last, history = run(main())
    assert [item["seq"] for item in history["messages"]] == list(range(shown + 1, last + 1))
    assert history["complete"] is True


def test_a_resume_after_redis_lost_the_rooms_recent_list_comes_from_the_database(production, database_url):
    stack = production(workers=2, database_url=database_url)

    async def main():
        talker, shown = await talk_then_miss(stack.port, "lost", 120)
        deadline = time.monotonic() + TIMEOUT
        # Stored off the delivery path, by two workers in batches that can commit in any order:
        # wait for all of them, not for the last one.
        while stack.stored_seqs("lost")[-120:] != list(range(shown + 1, shown + 121)):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        redis.StrictRedis(port=stack.redis[0].port).delete(Room("lost").key("recent"))
        async with join(stack.port, "lost", since=shown) as back:
            _, history = await joined(back)
        await talker.close()
        return shown, history

    shown, history = run(main())
    assert [item["seq"] for item in history["messages"]] == list(range(shown + 1, shown + 121))
    assert [item["message"] for item in history["messages"]][:2] == ["missed 0", "missed 1"]


def test_a_resume_over_two_shards_and_two_daphnes(production):
    stack = production(workers=2, daphnes=2, shards=2)
    first, second = (daphne.port for daphne in stack.daphnes)

    async def main():
        talker, shown = await talk_then_miss(first, "sharded", 60, listener_port=second)
        async with join(first, "sharded", since=shown) as back:
            _, history = await joined(back)
        await talker.close()
        return shown, history

    shown, history = run(main())
    assert [item["seq"] for item in history["messages"]] == list(range(shown + 1, shown + 61))


def test_a_since_that_is_not_a_number_is_refused_with_the_reason(production):
    stack = production(workers=1)

    async def main():
        async with connect("ws://127.0.0.1:%d/lobby/?since=last" % stack.port,
                           origin="http://127.0.0.1:%d" % stack.port) as ws:
            refusal = await ws.recv()
            await ws.wait_closed()
            return refusal, ws.close_code

    refusal, code = run(main())
    assert '"bad_since"' in refusal and code == 4400
