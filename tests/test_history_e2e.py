"""End to end, on SQLite and on PostgreSQL: history, presence and handles with real daphne,
runworker and redis-server processes (docs/history.md)."""
import asyncio
import json
import signal
import time

import redis
from django.conf import settings

from channels_example.chat import presence
from tests.chatclient import frames_until, join, joined, messages, next_frame, run
from tests.logs import TRACEBACK, lines

HISTORY_LENGTH, HISTORY_PRUNE_EVERY, HISTORY_RETENTION = (
    settings.HISTORY_LENGTH, settings.HISTORY_PRUNE_EVERY, settings.HISTORY_RETENTION)


def wait_until_stored(stack, room, last_seq, first_seq=None, timeout=30):
    """The stored seqs of ``room`` once its message ``last_seq`` (and the retained ones before it) are
    stored, and, with ``first_seq``, the ones before that pruned.

    The workers store off the delivery path and tell no one: the database is read until then.
    Two workers store at once, so the prune may commit after later messages did.
    """
    deadline = time.monotonic() + timeout
    while True:
        seqs = stack.stored_seqs(room)
        if seqs and seqs[-1] == last_seq and len(seqs) >= min(last_seq, HISTORY_RETENTION) and (
                first_seq is None or seqs[0] == first_seq):
            return seqs
        assert time.monotonic() < deadline, "only %d messages stored, the last %s" % (len(seqs), seqs[-1:])
        time.sleep(0.05)


def test_joiners_get_history_then_every_later_message_once_in_a_busy_room(production, database_url):
    stack = production(workers=2, database_url=database_url)
    senders, per_sender, joiners = 5, 120, 20
    total = senders * per_sender

    async def sender(number, started):
        async with join(stack.port, "busy") as ws:
            _, history = await joined(ws)
            started.set()
            for count in range(per_sender):
                await ws.send("s%d:%d" % (number, count))
                await asyncio.sleep(0.01)
            if history["upto"] < total:
                await frames_until(ws, lambda got: got and got[-1].get("seq") == total, timeout=120)

    async def joiner(number):
        async with join(stack.port, "busy", "joiner-%d" % number) as ws:
            welcome, history = await joined(ws)
            # The gate delivers the room's messages in their order: the last one comes last.
            live = []
            if history["upto"] < total:
                live = await frames_until(ws, lambda got: got and got[-1].get("seq") == total, timeout=120)
            return history, [frame for frame in live if frame["type"] == "message"]

    async def main():
        started = [asyncio.Event() for _ in range(senders)]
        sending = [asyncio.ensure_future(sender(number, started[number])) for number in range(senders)]
        for event, task in zip(started, sending):
            await asyncio.wait([asyncio.ensure_future(event.wait()), task], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # a sender that failed before it started fails the test now
        seen = []
        for number in range(joiners):
            # One by one, while the room is busy.
            seen.append(asyncio.ensure_future(joiner(number)))
            await asyncio.sleep(0.03)
        results = await asyncio.gather(*seen)
        await asyncio.gather(*sending)
        return results

    results = run(main())
    print("joined after messages:", [history["upto"] for history, _ in results])
    mid_stream = 0
    for history, live in results:
        upto = history["upto"]
        history_seqs = [item["seq"] for item in history["messages"]]
        live_seqs = [frame["seq"] for frame in live]
        # History: the last HISTORY_LENGTH messages up to `upto`, oldest first.
        assert history_seqs == list(range(max(1, upto - HISTORY_LENGTH + 1), upto + 1))
        # Live: every message after `upto` exactly once, in the room's order, to the end.
        assert live_seqs == list(range(upto + 1, total + 1))
        mid_stream += 0 < upto < total
    assert mid_stream >= joiners // 2, "most joiners should join while the room is busy"
    assert wait_until_stored(stack, "busy", total) == list(range(1, total + 1))
    assert lines(stack.logs(), TRACEBACK) == []


def test_the_database_keeps_the_last_messages_of_each_room_and_serves_history_when_redis_lost_it(
        production, database_url):
    stack = production(workers=2, database_url=database_url)
    total = HISTORY_RETENTION + HISTORY_PRUNE_EVERY + 50

    async def chat():
        async with join(stack.port, "long") as ws:
            await joined(ws)
            for start in range(0, total, 200):
                batch = range(start, min(start + 200, total))
                for number in batch:
                    await ws.send(str(number))
                await messages(ws, len(batch))

    run(chat())
    seqs = wait_until_stored(stack, "long", total, first_seq=HISTORY_PRUNE_EVERY + 1)
    # Pruned when the room's message number HISTORY_RETENTION + HISTORY_PRUNE_EVERY was stored.
    assert seqs == list(range(HISTORY_PRUNE_EVERY + 1, total + 1))

    # Redis loses everything: history now comes from the database, and numbering goes on.
    redis.StrictRedis(port=stack.redis[0].port).flushall()

    async def rejoin():
        async with join(stack.port, "long") as ws:
            _, history = await joined(ws)
            await ws.send("after")
            return history, (await messages(ws, 1))[0]

    history, after = run(rejoin())
    assert [item["seq"] for item in history["messages"]] == list(range(total - HISTORY_LENGTH + 1, total + 1))
    assert [item["message"] for item in history["messages"]][-1] == str(total - 1)
    assert after["seq"] == total + 1


def test_handles_are_validated_generated_and_told_to_their_client(production, database_url):
    stack = production(workers=2, database_url=database_url)

    async def main():
        async with join(stack.port, "names", "小明") as named, join(stack.port, "names") as guest:
            named_welcome, _ = await joined(named)
            guest_welcome, _ = await joined(guest)
            # A frame cannot choose who speaks (docs/protocol.md); the name comes from the connect.
            await guest.send(json.dumps({"message": "hi", "handle": "x" * 33}))
            error = await next_frame(guest)
            await guest.send("hello")
            said = await frames_until(guest, lambda got: got and got[-1]["type"] == "message")
        async with join(stack.port, "names", "bad\x07handle") as refused:
            refusal = await next_frame(refused)
        return named_welcome, guest_welcome, error, said[-1], refusal

    named_welcome, guest_welcome, error, said, refusal = run(main())
    assert named_welcome["handle"] == "小明"
    assert guest_welcome["handle"].startswith("guest-") and said["handle"] == guest_welcome["handle"]
    assert sorted(guest_welcome["members"]) == sorted(["小明", guest_welcome["handle"]])
    assert error["code"] == "handle_not_allowed"
    assert refusal["code"] == "bad_handle"


def replay(welcome, events):
    """The members a client believes are present: its welcome list, then each join and leave."""
    present = list(welcome["members"])
    for event in events:
        if event["event"] == "join":
            present.append(event["handle"])
        else:
            present.remove(event["handle"])
        assert len(present) == event["members"], (event, present)
    return sorted(present)


def test_joins_and_leaves_are_counted_right_across_two_daphnes_and_two_workers(production, database_url):
    stack = production(workers=2, daphnes=2, database_url=database_url)
    ports = [daphne.port for daphne in stack.daphnes]
    names = ["p%02d" % number for number in range(20)]
    stayers = names[::2]
    expected = sorted(["watcher-0", "watcher-1"] + stayers)

    def settled(welcome, frames):
        # Every join and every leave heard (a replay can match ``expected`` on the way, before
        # a late join and its leave have both arrived), and the stream consistent.
        events = [frame for frame in frames if frame["type"] == "presence"]
        if len(events) < len(names) + len(names) - len(stayers):
            return False
        try:
            return replay(welcome, events) == expected
        except (AssertionError, ValueError):  # an inconsistent stream never settles: the test times out
            return False

    async def watcher(number, ready):
        ws = await join(ports[number], "presence", "watcher-%d" % number).__aenter__()
        welcome, _ = await joined(ws)
        ready.set()
        frames = await frames_until(ws, lambda got: settled(welcome, got), timeout=60)
        return ws, welcome, [frame for frame in frames if frame["type"] == "presence"]

    async def main():
        ready = [asyncio.Event(), asyncio.Event()]
        watchers = [asyncio.ensure_future(watcher(number, ready[number])) for number in range(2)]
        for event in ready:
            await event.wait()
        # Twenty join at once, alternately on each daphne; then every other one leaves.
        sockets = await asyncio.gather(*(join(ports[number % 2], "presence", name).__aenter__()
                                         for number, name in enumerate(names)))
        await asyncio.gather(*(joined(ws) for ws in sockets))
        await asyncio.gather(*(ws.close() for ws, name in zip(sockets, names) if name not in stayers))
        watched = await asyncio.gather(*watchers)
        async with join(ports[1], "presence", "late") as late:
            late_welcome, _ = await joined(late)
        await asyncio.gather(*(ws.close() for ws, name in zip(sockets, names) if name in stayers))
        await asyncio.gather(*(ws.close() for ws, _, _ in watched))
        return [(welcome, events) for _, welcome, events in watched], late_welcome

    watched, late_welcome = run(main())
    for welcome, events in watched:
        assert replay(welcome, events) == expected
        assert events[-1]["members"] == len(expected)
    assert sorted(late_welcome["members"]) == sorted(expected + ["late"])


def test_members_of_a_kill_9_daphne_leave_within_the_ghost_time(production, database_url):
    stack = production(workers=2, daphnes=2, database_url=database_url)
    survivor, victim = stack.daphnes

    async def main():
        async with join(survivor.port, "ghosts", "watcher") as watcher:
            await joined(watcher)
            doomed = [await join(victim.port, "ghosts", "ghost-%d" % number).__aenter__() for number in range(3)]
            await frames_until(watcher, lambda got: got and got[-1].get("members") == 4)
            victim.stop(signal.SIGKILL)
            killed = time.monotonic()
            events = await frames_until(watcher, lambda got: got and got[-1].get("members") == 1, timeout=30)
            gone = time.monotonic() - killed
            for ws in doomed:
                await asyncio.wait_for(ws.wait_closed(), 10)
            await watcher.send("still here")
            return gone, events, (await messages(watcher, 1))[0]

    gone, events, message = run(main())
    print("a kill -9'd daphne's members were gone %.1f s after the kill" % gone)
    assert sorted(event["handle"] for event in events if event["event"] == "leave") == ["ghost-0", "ghost-1", "ghost-2"]
    assert gone < presence.ghost_seconds()
    assert message["message"] == "still here"
    assert stack.dropped() == 0
