"""End to end on asgi_redis's own layers, unchanged (REDIS_LAYER=stock): daphne, two runworkers and the
clock over a real redis-server, and over Redis Sentinel (docs/history.md#on-asgi_rediss-own-layer).

The chat keeps its wire protocol on them: history on join, stored in the database; presence;
each sender's messages numbered in the order sent with several workers; ``?since=`` resume; a
killed daphne's members swept. Without the project's join gate a client puts the room's messages
in order by ``seq`` itself, as the page does (tests.chatclient.RoomView).
"""
import asyncio
import json
import signal
import time

from channels_example.chat import presence
from tests.chatclient import RoomView, join, run
from tests.logs import lines
from tests.test_history_e2e import wait_until_stored

STOCK = {"REDIS_LAYER": "stock"}


def stock(production, **shape):
    """The production topology on asgi_redis's own layer; each worker says which layer it runs."""
    stack = production(**dict(shape, **STOCK))
    layer = "asgi_redis.sentinel.RedisSentinelChannelLayer" if shape.get("sentinel") else "asgi_redis.core.RedisChannelLayer"
    assert len(lines(stack.logs(stack.workers), r"\bRunning worker against channel layer default \(%s\)$"
                     % layer.replace(".", r"\."))) == len(stack.workers)
    return stack


def test_joiners_see_the_history_then_every_later_message_once_in_order_after_placing_them_by_seq(production):
    stack = stock(production, workers=2)
    senders, per_sender, joiners = 3, 60, 8
    total = senders * per_sender

    async def sender(number):
        async with join(stack.port, "busy", "s%d" % number) as ws:
            await RoomView().until(ws, lambda view: view.history is not None)
            for count in range(per_sender):
                await ws.send("s%d:%d" % (number, count))
                await asyncio.sleep(0.01)

    async def joiner(number):
        async with join(stack.port, "busy", "j%d" % number) as ws:
            view = await RoomView().until(ws, lambda view: view.history is not None and total in view.shown,
                                          timeout=120)
            return view

    async def main():
        sending = [asyncio.ensure_future(sender(number)) for number in range(senders)]
        seen = []
        for number in range(joiners):
            seen.append(asyncio.ensure_future(joiner(number)))
            await asyncio.sleep(0.1)
        views = await asyncio.gather(*seen)
        await asyncio.gather(*sending)
        return views

    for view in run(main()):
        upto = view.history["upto"]
        assert [item["seq"] for item in view.history["messages"]] == list(range(max(1, upto - 49), upto + 1))
        assert [item["seq"] for item in view.messages()] == list(range(max(1, upto - 49), total + 1))
    assert wait_until_stored(stack, "busy", total) == list(range(1, total + 1))


def test_each_senders_messages_are_numbered_in_the_order_sent_with_two_workers(production):
    stack = stock(production, workers=2)

    async def main():
        async with join(stack.port, "burst", "ann") as ann, join(stack.port, "burst", "bob") as bob:
            await RoomView().until(ann, lambda view: view.history is not None)
            view = await RoomView().until(bob, lambda view: view.history is not None)
            for number in range(300):
                await ann.send(str(number))
            await view.until(bob, lambda view: len(view.messages()) == 300, timeout=60)
            return view.messages()

    messages = run(main())
    assert [(item["seq"], item["message"]) for item in messages] == [(n + 1, str(n)) for n in range(300)]


def test_a_resume_gets_exactly_what_was_missed(production):
    stack = stock(production, workers=2)

    async def main():
        async with join(stack.port, "resume", "talker") as talker:
            heard = await RoomView().until(talker, lambda view: view.history is not None)
            for number in range(20):
                await talker.send("m%d" % number)
            await heard.until(talker, lambda view: 20 in view.shown)  # all 20 numbered, as a page that showed them
            async with join(stack.port, "resume", "listener", since=5) as back:
                view = await RoomView().until(back, lambda view: view.history is not None and 20 in view.shown)
        return view

    view = run(main())
    assert (view.history["since"], view.history["complete"]) == (5, True)
    assert [item["seq"] for item in view.messages()] == list(range(6, 21))


def test_the_members_of_a_killed_daphne_leave_within_the_ghost_time(production):
    stack = stock(production, workers=2, daphnes=2)
    survivor, victim = stack.daphnes

    async def main():
        async with join(survivor.port, "ghosts", "watcher") as watcher:
            counts = []

            async def members(count):
                while not counts or counts[-1] != count:
                    frame = json.loads(await watcher.recv())
                    if frame["type"] in ("welcome", "presence"):
                        counts.append(len(frame["members"]) if frame["type"] == "welcome" else frame["members"])

            await asyncio.wait_for(members(1), 30)
            doomed = [await join(victim.port, "ghosts", "ghost-%d" % number).__aenter__() for number in range(3)]
            await asyncio.wait_for(members(4), 30)
            victim.stop(signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.wait_for(members(1), 30)
            for ws in doomed:
                await asyncio.wait_for(ws.wait_closed(), 10)
            return time.monotonic() - killed

    gone = run(main())
    print("on asgi_redis's own layer, a kill -9'd daphne's members were gone %.1f s after the kill" % gone)
    assert gone < presence.ghost_seconds()


def test_over_sentinel_a_room_chats_and_keeps_its_history(production):
    stack = stock(production, workers=2, sentinel=True)

    async def main():
        async with join(stack.port, "high", "ann") as ann, join(stack.port, "high", "bob") as bob:
            await RoomView().until(ann, lambda view: view.history is not None)
            view = await RoomView().until(bob, lambda view: view.history is not None)
            for number in range(10):
                await ann.send("m%d" % number)
            await view.until(bob, lambda view: len(view.messages()) == 10)
            return view.messages()

    assert [item["message"] for item in run(main())] == ["m%d" % n for n in range(10)]
    assert wait_until_stored(stack, "high", 10) == list(range(1, 11))
