"""End to end: losing a Redis master. Each shard is a Sentinel service of a master and a replica,
watched by three sentinels (channels_example/topology.py), under daphne and two runworkers that
reach Redis through Sentinel (REDIS_SENTINELS). The master is killed with SIGKILL while rooms
chat; no process is restarted (docs/deploying.md, "High availability")."""
import asyncio
import os
import signal
import time

import pytest
import redis
from websockets.exceptions import InvalidStatus

from channels_example.layers import RedisSentinelChannelLayer
from channels_example.topology import SENTINEL_DOWN_AFTER_MS
from tests.chatclient import TIMEOUT, frames_until, join, joined, messages, run

# The promise: rooms are silent for less than this after their master dies.
SILENCE_LIMIT = 10


class ChattingRoom:
    """A talker sending a numbered message every ``interval`` and a listener timing the gaps."""

    def __init__(self, port, name, interval=0.05):
        self.port, self.name, self.interval = port, name, interval
        self.sent, self.heard, self.arrivals, self.sent_at = 0, [], [], []
        self.ready = asyncio.Event()

    async def run(self, stop):
        async with join(self.port, self.name, "talker") as talker, join(self.port, self.name, "listener") as listener:
            await joined(talker)
            await joined(listener)
            hearing = asyncio.ensure_future(self.listen(listener))
            self.ready.set()
            while not stop.is_set():
                self.sent_at.append(time.monotonic())
                await talker.send("%s:%d" % (self.name, self.sent))
                self.sent += 1
                await asyncio.sleep(self.interval)
            # What was accepted in the end has arrived: one last message, heard after the rest.
            await talker.send("%s:last" % self.name)
            await asyncio.wait_for(self.heard_last(), TIMEOUT)
            hearing.cancel()

    async def listen(self, listener):
        while True:
            frame = (await messages(listener, 1, timeout=3600))[0]
            self.heard.append((frame["seq"], frame["message"]))
            self.arrivals.append(time.monotonic())

    async def heard_last(self):
        while not self.heard or not self.heard[-1][1].endswith(":last"):
            await asyncio.sleep(0.05)

    def longest_silence(self, since):
        return self.silence(since)[1]

    def silence(self, since):
        """``(when it began, seconds after since; how long)`` of the longest silence after ``since``."""
        times = [since] + [at for at in self.arrivals if at > since]
        earlier, later = max(zip(times, times[1:]), key=lambda pair: pair[1] - pair[0])
        return earlier - since, later - earlier

    def numbers(self):
        return [int(text.split(":")[1]) for _, text in self.heard if not text.endswith(":last")]


def chat_through_a_failover(stack, rooms, victim_service, before=2.0, after=8.0, how=signal.SIGKILL, meanwhile=None):
    """Rooms chat; ``victim_service``'s master is killed (or frozen: ``how=signal.SIGSTOP``); they go on
    chatting. Returns the kill's time. ``meanwhile(outage)``: a coroutine run beside the chat from
    when every room has joined; it awaits ``outage`` (an Event set at the kill) to act during it."""
    killed = {}

    async def main():
        stop = asyncio.Event()
        chatting = [asyncio.ensure_future(room.run(stop)) for room in rooms]
        # Every room joined (on a busy machine that takes a while), then steady chat.
        await asyncio.wait_for(asyncio.gather(*(room.ready.wait() for room in rooms)), TIMEOUT)
        outage = asyncio.Event()
        beside = asyncio.ensure_future(meanwhile(outage)) if meanwhile else None
        await asyncio.sleep(before)  # a steady room: the time is the point
        victim = stack.services[victim_service]
        if how == signal.SIGKILL:
            victim.stop(signal.SIGKILL)
        else:
            os.kill(victim.pid, how)
        killed["at"] = time.monotonic()
        outage.set()
        await asyncio.sleep(after)
        stop.set()
        await asyncio.gather(*chatting)
        if beside is not None:
            await beside

    run(main())
    return killed["at"]


def assert_in_order_and_report(rooms, killed):
    late = {}
    for room in rooms:
        seqs = [seq for seq, _ in room.heard]
        assert seqs == sorted(set(seqs)), "room %s heard numbers out of order or twice" % room.name
        numbers = room.numbers()
        assert len(numbers) == len(set(numbers)), "room %s heard its talker twice" % room.name
        # A frame a worker was handling when the master died can finish only after the failover,
        # later than its gap was skipped: it is delivered late rather than lost (docs/ordering.md).
        # Only such a frame may come after a later one: sent before the kill, heard after it.
        late[room.name] = [number for at, number in enumerate(numbers) if number < max(numbers[:at], default=-1)]
        assert all(room.sent_at[number] < killed for number in late[room.name]), \
            "room %s heard its talker out of order in steady chat: %s" % (room.name, late[room.name])
    silences = {room.name: round(room.longest_silence(killed - 1), 2) for room in rooms}
    print("longest silence per room, began (s after the kill), lasted (s):",
          {room.name: tuple(round(part, 2) for part in room.silence(killed - 1)) for room in rooms})
    lost = {room.name: room.sent - len(room.numbers()) for room in rooms}
    print("longest silence per room after the kill (s):", silences)
    print("messages lost per room (sent, never heard):", lost)
    print("messages delivered late, after later ones, per room:", late)
    return silences, lost


def test_rooms_chat_again_within_10_s_of_losing_their_master_in_order(production):
    stack = production(workers=2, sentinel=True)
    rooms = [ChattingRoom(stack.port, "room-%d" % number) for number in range(10)]
    killed = chat_through_a_failover(stack, rooms, "shard0")
    silences, lost = assert_in_order_and_report(rooms, killed)
    assert max(silences.values()) < SILENCE_LIMIT
    assert stack.master_port("shard0") == stack.replicas[0].port, "the replica was not promoted"
    assert all(process.running() for process in stack.daphnes + stack.workers)
    # Nothing stuck: a newcomer's history ends where the rooms ended, and presence counts
    # the room's two members (the newcomer makes three).
    async def newcomer(room):
        async with join(stack.port, room.name) as ws:
            welcome, history = await joined(ws)
            return welcome, history

    for room in rooms:
        welcome, history = run(newcomer(room))
        assert history["messages"][-1]["message"] == "%s:last" % room.name
        assert history["upto"] == room.heard[-1][0]
    print("a sentinel takes a master for down after %d ms" % SENTINEL_DOWN_AFTER_MS)


# With two shards, the rooms of the one that did not fail lose nothing, and their longest
# silence stays under this (at 20 messages a second, the gap between two is 0.05 s; what
# remains, 0.2-0.3 s, is the other shard's new master starting: each worker's first message
# there waits NUMBERING_REPLICA_WAIT_MS for a replica it does not have yet).
SURVIVOR_SILENCE_LIMIT = 1.5


def test_with_two_shards_only_the_failed_ones_rooms_notice(production):
    # A socket's session and ordering keys live on its room's shard, and its daphne reads
    # its process channel on both (docs/deploying.md): the failing shard's rooms are silent
    # while it fails over, the other's chat on.
    stack = production(workers=2, daphnes=1, shards=2, sentinel=True)
    layer = RedisSentinelChannelLayer(hosts=[("127.0.0.1", sentinel.port) for sentinel in stack.sentinels],
                                      services=list(stack.services))
    rooms = [ChattingRoom(stack.port, "pair-%d" % number) for number in range(10)]
    on_survivor = [room.name for room in rooms if layer.consistent_hash("chat-" + room.name) == 0]
    assert on_survivor and len(on_survivor) < len(rooms), "the rooms must be on both shards"
    failing = next(room.name for room in rooms if room.name not in on_survivor)

    async def meanwhile(outage):
        # One more member of a failing room, who leaves during the failover.
        leaver = await join(stack.port, failing, "leaver").__aenter__()
        await joined(leaver)
        await outage.wait()
        started = time.monotonic()
        # A newcomer to a failing room is refused at once, with a reason (503)...
        with pytest.raises(InvalidStatus) as refused:
            await join(stack.port, failing, "newcomer").__aenter__()
        refused_after = time.monotonic() - started
        # ...and one to a room of the other shard joins as ever.
        started = time.monotonic()
        async with join(stack.port, on_survivor[0], "newcomer") as newcomer:
            await joined(newcomer)
        joined_after = time.monotonic() - started
        await leaver.close()
        seen.update(status=refused.value.response.status_code, refused_after=refused_after, joined_after=joined_after)

    seen = {}
    killed = chat_through_a_failover(stack, rooms, "shard1", meanwhile=meanwhile)
    status, refused_after, joined_after = seen["status"], seen["refused_after"], seen["joined_after"]
    silences, lost = assert_in_order_and_report(rooms, killed)
    print("rooms whose Group is on the shard that lived:", on_survivor)
    print("during the failover: a newcomer to %s got %d after %.3f s; one to %s joined in %.3f s"
          % (failing, status, refused_after, on_survivor[0], joined_after))
    assert max(silences.values()) < SILENCE_LIMIT
    assert {name: lost[name] for name in on_survivor} == {name: 0 for name in on_survivor}
    assert max(silences[name] for name in on_survivor) < SURVIVOR_SILENCE_LIMIT
    assert status == 503 and refused_after < 1 and joined_after < SURVIVOR_SILENCE_LIMIT
    assert stack.master_port("shard0") == stack.redis[0].port  # the other shard never failed over

    # The leaver's disconnect, kept by daphne through the failover, reached its room afterwards:
    # a newcomer sees every other member leave (the room's last disconnects may still be on
    # their way when it joins: it waits for their presence events).
    async def everyone_else_leaves(room):
        async with join(stack.port, room) as ws:
            welcome, _ = await joined(ws)
            if len(welcome["members"]) > 1:
                await frames_until(ws, lambda got: got and got[-1]["type"] == "presence" and got[-1]["members"] == 1)
            return welcome["members"]

    print("members a newcomer found in %s:" % failing, run(everyone_else_leaves(failing)))


def test_a_master_that_hangs_is_left_behind_as_one_that_died(production):
    """A master whose host stops answering (here frozen with SIGSTOP) closes no connection: its
    clients get silence, not an error. Every call to a master gives up after
    settings.REDIS_SOCKET_TIMEOUT, and the next connection asks the sentinels again."""
    stack = production(workers=2, sentinel=True)
    rooms = [ChattingRoom(stack.port, "frozen-%d" % number) for number in range(3)]
    try:
        killed = chat_through_a_failover(stack, rooms, "shard0", how=signal.SIGSTOP)
        silences, lost = assert_in_order_and_report(rooms, killed)
        assert max(silences.values()) < SILENCE_LIMIT
        assert stack.master_port("shard0") == stack.replicas[0].port, "the replica was not promoted"
        assert all(process.running() for process in stack.daphnes + stack.workers)
    finally:
        stack.services["shard0"].stop(signal.SIGKILL)  # a frozen process takes no SIGTERM


def test_the_old_master_comes_back_as_a_replica_and_nothing_breaks(production):
    stack = production(workers=2, sentinel=True)
    rooms = [ChattingRoom(stack.port, "back-%d" % number) for number in range(3)]
    killed = chat_through_a_failover(stack, rooms, "shard0", after=6.0)
    assert_in_order_and_report(rooms, killed)
    old = stack.services["shard0"]
    old.start()
    deadline = time.monotonic() + 30
    while redis.StrictRedis(port=old.port).info("replication")["role"] != "slave":
        assert time.monotonic() < deadline, "the old master never became a replica"
        time.sleep(0.2)  # the sentinels reconfigure it when they see it again
    again = [ChattingRoom(stack.port, "back-%d" % number) for number in range(3)]

    async def chat_on():
        stop = asyncio.Event()
        chatting = [asyncio.ensure_future(room.run(stop)) for room in again]
        await asyncio.sleep(3.0)  # three seconds of chat with the old master back as a replica
        stop.set()
        await asyncio.gather(*chatting)

    run(chat_on())
    for room in again:
        assert room.numbers() == list(range(room.sent)), "a message was lost with the old master back"


def test_with_a_password_a_former_master_can_follow_the_new_one(tmp_path):
    """scripts/prod --sentinel sets a password: a master brought back after a failover is made a
    replica of the new master, and must authenticate to it (masterauth on every server)."""
    from channels_example import topology
    from tests.servers import Process, free_port

    servers = []
    try:
        for name in ("old-master", "new-master"):
            port = free_port()
            (tmp_path / name).mkdir()
            servers.append(Process(name, topology.redis_argv(port, tmp_path / name, password="s3cret"), port=port,
                                   log_path=tmp_path / (name + ".log")).start())
        old, new = (redis.StrictRedis(port=server.port, password="s3cret") for server in servers)
        new.set("kept", "yes")
        old.execute_command("REPLICAOF", "127.0.0.1", servers[1].port)
        deadline = time.monotonic() + TIMEOUT
        while old.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the former master never synced: %s" % old.info("replication")
            time.sleep(0.05)
        assert old.get("kept") == b"yes"
    finally:
        for server in servers:
            server.stop()
