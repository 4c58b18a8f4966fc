"""bench/chatbench.py counts exactly: against a tiny chat server that loses, repeats and
reorders deliveries on purpose, in known amounts, it reports those amounts and no others.

The server speaks docs/protocol.md (each message echoed as a "message" frame to every member
of the path's room, the sender included) and runs on a free loopback port in the test's own
event loop. Each client sends 10 messages (sequence numbers 0-9): 100/s for 0.1 s.
"""
import asyncio
import json
import os
import subprocess
import sys
import time
from http import HTTPStatus

from websockets.asyncio.server import serve

from bench import chatbench
from tests.chatclient import run
from tests.servers import ROOT, free_port

ROOMS, CLIENTS, MESSAGES = 2, 4, 10
SENT = ROOMS * CLIENTS * MESSAGES
EXPECTED = SENT * CLIENTS  # every message to every member of its room


class ChatServer:
    """The protocol, with optional faults. ``fault(position, seq)`` says what happens to
    the delivery of message ``seq`` to the room's member at ``position``: "deliver",
    "drop", "duplicate", or "hold" (delivered right after the sender's next message)."""

    def __init__(self, fault=None, refuse=(), close_after_delivery=None):
        self.fault = fault or (lambda position, seq: "deliver")
        self.refuse = set(refuse)
        self.close_after_delivery = close_after_delivery
        self.rooms = {}
        self.held = {}

    def process_request(self, connection, request):
        path, _, query = request.path.partition("?")
        handle = query.partition("handle=")[2]
        if handle in self.refuse:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "full\n")
        connection.room, connection.handle = path.strip("/"), handle
        # A member from the handshake on, as channels' ws_connect adds it to the Group before accepting.
        self.rooms.setdefault(connection.room, []).append(connection)
        return None

    async def handler(self, connection):
        members = self.rooms[connection.room]
        try:
            async for text in connection:
                message = json.loads(text)["message"]
                sender, seq = (int(part) for part in message.split("|")[:2])
                frame = json.dumps({"type": "message", "room": connection.room, "handle": connection.handle,
                                    "message": message, "ts": 0})
                # The member to be closed goes first: every other delivery waits for its
                # closing handshake, so the tool cannot finish before it has seen the close.
                ordered = sorted(members, key=lambda member: member.handle != self.close_after_delivery)
                for position, member in enumerate(ordered):
                    await self.deliver(position, member, sender, seq, frame)
        finally:
            members.remove(connection)

    async def deliver(self, position, member, sender, seq, frame):
        action = self.fault(position, seq)
        if action == "drop":
            return
        if action == "hold":
            self.held[member, sender] = frame
            return
        await member.send(frame)
        if action == "duplicate":
            await member.send(frame)
        if (member, sender) in self.held:
            await member.send(self.held.pop((member, sender)))
        if member.handle == self.close_after_delivery:
            await member.close(1013, "try again later")


def bench_run(server, *options):
    async def main():
        async with serve(server.handler, "127.0.0.1", 0, process_request=server.process_request,
                         compression=None) as listening:
            port = listening.sockets[0].getsockname()[1]
            config = chatbench.parse_args([
                "ws://127.0.0.1:%d" % port, "--rooms", str(ROOMS), "--clients", str(CLIENTS),
                "--rate", "100", "--duration", "0.1", "--settle", "0", "--pid", str(os.getpid()),
            ] + list(options))
            return await chatbench.run(config)

    return run(main())


def only_phase(report):
    [phase] = report["phases"]
    return phase


def test_a_correct_server_loses_repeats_and_reorders_nothing():
    report = bench_run(ChatServer())

    phase = only_phase(report)
    assert report["connect"]["connected"] == ROOMS * CLIENTS
    assert (phase["sent"], phase["expected"], phase["delivered"]) == (SENT, EXPECTED, EXPECTED)
    assert (phase["lost"], phase["duplicated"], phase["out_of_order"], phase["late"]) == (0, 0, 0, 0)
    assert phase["latency_ms"]["count"] == EXPECTED
    assert report["closes_by_server"] == {}
    assert report["closes_at_end"] == {"1000": ROOMS * CLIENTS}


def test_drops_duplicates_and_reorders_are_counted_exactly():
    # Every sender's message 3 is lost on its way to the room's first member, message 5
    # reaches the second member twice, and message 6 reaches the third after message 7.
    faults = {(0, 3): "drop", (1, 5): "duplicate", (2, 6): "hold"}
    senders = ROOMS * CLIENTS

    report = bench_run(ChatServer(lambda position, seq: faults.get((position, seq), "deliver")),
                       "--drain-quiet", "1")

    phase = only_phase(report)
    assert phase["expected"] == EXPECTED
    assert phase["lost"] == senders
    assert phase["duplicated"] == senders
    assert phase["out_of_order"] == senders
    assert phase["delivered"] == EXPECTED - senders
    assert phase["late"] == 0 and phase["foreign"] == 0


def test_refused_connections_are_reported_with_their_status_and_expect_nothing():
    report = bench_run(ChatServer(refuse={"c1", "c6"}))

    phase = only_phase(report)
    assert report["connect"]["refused"] == 2
    assert report["connect"]["refusals"] == {"HTTP 503": 2}
    # Room 0 (c0 c2 c4 c6) and room 1 (c1 c3 c5 c7) have 3 members each.
    assert phase["expected"] == ROOMS * 3 * MESSAGES * 3
    assert phase["delivered"] == phase["expected"] and phase["lost"] == 0


def test_one_message_per_room_reaches_every_member():
    report = bench_run(ChatServer(), "--one-per-room")

    phase = only_phase(report)
    assert (phase["sent"], phase["expected"], phase["delivered"], phase["lost"]) == (
        ROOMS, ROOMS * CLIENTS, ROOMS * CLIENTS, 0)


def test_a_close_by_the_server_is_reported_with_its_code():
    report = bench_run(ChatServer(close_after_delivery="c2"), "--one-per-room")

    assert report["closes_by_server"] == {"1013": 1}
    assert report["close_reasons"] == {"1013 try again later": 1}


def chatbench_command(port, *options):
    return [sys.executable, os.path.join(ROOT, "bench", "chatbench.py"), "ws://127.0.0.1:%d" % port,
            "--rooms", str(ROOMS), "--clients", str(CLIENTS), "--rate", "100", "--duration", "0.1",
            "--settle", "0"] + list(options)


def test_the_command_fails_when_clients_are_refused():
    server = ChatServer(refuse={"c1"})

    async def main():
        async with serve(server.handler, "127.0.0.1", 0, process_request=server.process_request,
                         compression=None) as listening:
            port = listening.sockets[0].getsockname()[1]
            bench = await asyncio.create_subprocess_exec(*chatbench_command(port), stderr=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.DEVNULL)
            _, stderr = await bench.communicate()
            return bench.returncode, stderr.decode()

    code, stderr = run(main())
    assert code != 0 and "1 of 8 clients could not connect" in stderr


def test_the_command_waits_for_a_server_that_is_not_listening_yet_and_fails_if_none_comes():
    port = free_port()
    started = time.monotonic()
    bench = subprocess.run(chatbench_command(port, "--wait", "1"), capture_output=True, text=True)
    assert bench.returncode != 0 and "nothing listens at ws://127.0.0.1:%d after 1 s" % port in bench.stderr
    assert time.monotonic() - started >= 1
