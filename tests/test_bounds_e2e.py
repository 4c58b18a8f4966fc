"""End to end: what a hostile client sends gets a clear answer and harms no one (docs/security.md).

Against real processes: the production topology (redis-server, daphne, two runworkers)
and runserver. Each test asserts what the client sees (a close code, an error code, an
HTTP status) and that nothing else was hurt: another member keeps chatting, a new joiner
gets its history. Where the point is memory, the servers' peak RSS is read from
/proc/<pid>/status (VmHWM, reset before the attack through /proc/<pid>/clear_refs).
"""
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from channels_example.chat import recent
from tests.chatclient import TIMEOUT, frames_until, join, joined, messages, next_frame, run, url
from tests.logs import lines
from tests.servers import ROOT, free_port

MB = 1024 * 1024


def peak_kb(pid):
    with open("/proc/%d/status" % pid) as status:
        return int(status.read().split("VmHWM:")[1].split()[0])


@contextmanager
def peak_growth(*pids):
    """``with peak_growth(pid, ...) as grown``: afterwards ``grown[pid]`` is the most each process's
    resident memory rose above its size at the start, in MB."""
    start = {}
    for pid in pids:
        with open("/proc/%d/clear_refs" % pid, "w") as clear:
            clear.write("5")  # VmHWM := the resident size now
        start[pid] = peak_kb(pid)
    grown = {}
    yield grown
    grown.update({pid: (peak_kb(pid) - start[pid]) / 1024 for pid in pids})


async def still_chatting(port, room, text="still here"):
    """A member of ``room`` says something and hears it; then a newcomer gets it in its history."""
    async with join(port, room) as member:
        await joined(member)
        await member.send(text)
        said = (await messages(member, 1))[0]["message"]
    async with join(port, room) as newcomer:
        _, history = await joined(newcomer)
    return said, [item["message"] for item in history["messages"]]


def test_a_64_mb_frame_is_closed_with_1009_from_its_header_and_daphne_never_holds_it(production):
    stack = production(workers=2)
    daphne = stack.daphnes[0].pid

    async def attack():
        async with join(stack.port, "big") as attacker:
            await joined(attacker)
            # The head of a 64 MB text frame (FIN, text; masked, a zero key) and its first MB, the
            # rest never sent: a client busy writing 64 MB would not read the close frame before
            # daphne's close handshake times out, and would see the reset (1006) instead.
            head = bytes([0x81, 0x80 | 127]) + (64 * MB).to_bytes(8, "big") + bytes(4)
            attacker.transport.write(head + b"x" * MB)
            await asyncio.wait_for(attacker.wait_closed(), TIMEOUT)
            return attacker.close_code, attacker.close_reason

    with peak_growth(daphne) as grown:
        code, reason = run(attack())
    print("a 64 MB frame: daphne's peak grew %.1f MB" % grown[daphne])
    assert code == 1009 and "payload limit" in reason
    assert grown[daphne] < 8, "daphne grew %.0f MB" % grown[daphne]
    said, history = run(still_chatting(stack.port, "big"))
    assert said == "still here" and history == ["still here"]


def http_status(port, head):
    """Send a request's head only (what a client sends before its body) and read the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        connection.sendall(head)
        return connection.makefile("rb").readline().decode("latin-1").strip()


def test_a_64_mb_post_is_refused_with_413_before_anyone_reads_it(production):
    stack = production(workers=2)
    pids = [process.pid for process in stack.processes()]
    run(still_chatting(stack.port, "warm-up"))  # the workers have loaded what they load on first use
    http_body(stack.port, "/")
    http_body(stack.port, "/")
    head = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % (64 * MB))

    with peak_growth(*pids) as grown:
        status = http_status(stack.port, head)
        # A client that sends the body anyway finds the connection closed after its first bytes.
        with socket.create_connection(("127.0.0.1", stack.port), timeout=TIMEOUT) as connection:
            connection.sendall(head)
            with pytest.raises(OSError):
                for _ in range(64):
                    connection.sendall(b"x" * MB)
    print("a 64 MB POST: peaks grew %s MB" % {pid: round(mb, 1) for pid, mb in grown.items()})
    assert status == "HTTP/1.1 413 Payload Too Large"
    assert max(grown.values()) < 4, "grew %s MB" % grown
    assert lines(stack.logs(stack.daphnes), r"\brefused an HTTP request from 127\.0\.0\.1:\d+ with 413: ")
    said, _ = run(still_chatting(stack.port, "post"))
    assert said == "still here"


def test_a_multipart_body_is_refused_with_415_so_django_never_parses_its_parts(production):
    # CVE-2023-24580: Django 2.2 parses any number of parts. No view here takes a multipart body.
    stack = production(workers=2)
    parts = b"".join(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % n for n in range(100000))
    head = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken=x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: %d\r\n\r\n" % (len(parts) + 6))
    assert http_status(stack.port, head) == "HTTP/1.1 415 Unsupported Media Type"
    small = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
             b"Content-Length: 6\r\n\r\n--b--\r\n")
    assert http_status(stack.port, small) == "HTTP/1.1 415 Unsupported Media Type"
    # A small form still reaches Django (which refuses this one for its missing CSRF token).
    form = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\na=b"
    assert http_status(stack.port, form) == "HTTP/1.1 403 Forbidden"


def test_20_clients_that_never_read_are_closed_alone_and_daphne_stays_bounded(production):
    # A client that reads nothing answers no ping either: daphne's (20 s, then 30 s for the pong)
    # or its library's keepalive (20 s, 20 s) would close it once the run is slow enough, and then
    # it never meets the bound this tests. Without them each waits for the bound, however long.
    stack = production(workers=2, daphne_args=["--ping-interval", "86400"])
    daphne = stack.daphnes[0].pid
    readers, sent, size = 20, 4000, settings.MAX_MESSAGE_LENGTH

    async def never_reads():
        # A small receive buffer, and websockets stops reading once one message waits: the
        # kernel cannot hide what piles up in daphne.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", stack.port))
        return await connect(url(stack.port, "slow"), origin="http://127.0.0.1:%d" % stack.port, sock=raw,
                             max_queue=1, open_timeout=TIMEOUT, ping_interval=None).__aenter__()

    async def main():
        async with join(stack.port, "slow", "watcher") as watcher:
            await joined(watcher)
            slow = [await never_reads() for _ in range(readers)]
            await frames_until(watcher, lambda got: sum(f["type"] == "presence" for f in got) == readers)
            frames = []
            async with join(stack.port, "slow", "sender") as sender:
                await joined(sender)
                # A busy room, at the pace the room can take (not one socket's flood: that is 1013).
                for start in range(0, sent, 200):
                    for number in range(start, start + 200):
                        await sender.send(json.dumps({"message": "%05d" % number + "x" * (size - 5)}))
                    frames += await frames_until(watcher, lambda got: sum(f["type"] == "message" for f in got) == 200)
                frames += await frames_until(watcher, lambda got: sum(f.get("event") == "leave" for f in frames + got)
                                             >= readers)
            for ws in slow:
                ws.transport.abort()
            return frames

    with peak_growth(daphne) as grown:
        frames = run(main())
    print("20 clients that never read: daphne's peak grew %.1f MB" % grown[daphne])
    leaves = [frame["handle"] for frame in frames if frame.get("event") == "leave"]
    assert len(leaves) == readers and "sender" not in leaves
    got = [frame["message"][:5] for frame in frames if frame["type"] == "message"]
    assert got == ["%05d" % number for number in range(sent)], "the watcher lost or reordered messages"
    # Unbounded, each would hold most of the 8 MB sent to it (the kernel takes about 2 MB):
    # about 120 MB. Bounded, SOCKET_MAX_UNSENT (1 MiB) each, and about as much again in
    # passing while Twisted joins a socket's buffered writes into one.
    assert grown[daphne] < readers * 3, "daphne grew %.0f MB" % grown[daphne]
    assert len(lines(stack.logs(stack.daphnes), r" with 1008: it reads too slowly \(over \d+ bytes unsent\)$")) == readers


def test_a_client_over_the_rate_limit_gets_rate_limited_and_then_1008_while_its_room_chats(production):
    stack = production(workers=2, CHAT_RATE_LIMIT=None)  # the default, 5/s:20
    rate, burst = settings.CHAT_RATE_LIMIT

    async def main():
        async with join(stack.port, "rate", "member") as member, join(stack.port, "rate", "eager") as eager:
            await joined(member)
            await joined(eager)
            for number in range(burst + 10):
                await eager.send("e:%d" % number)
            refused = await frames_until(eager, lambda got: sum(f.get("code") == "rate_limited" for f in got) == 10)
            passed = await frames_until(member, lambda got: sum(f["type"] == "message" for f in got) == burst)
            try:
                for number in range(burst * 3):
                    await eager.send("again:%d" % number)
            except ConnectionClosed:
                pass
            await asyncio.wait_for(eager.wait_closed(), TIMEOUT)
            left = await frames_until(member, lambda got: any(f.get("event") == "leave" for f in got))
            await member.send("still here")
            after = await messages(member, 1)
            return refused, passed, eager.close_code, eager.close_reason, left, after

    refused, passed, code, reason, left, after = run(main())
    errors = [frame for frame in refused if frame.get("code") == "rate_limited"]
    assert all(0 < frame["retry_after"] <= 1 / rate for frame in errors)
    assert [frame["message"] for frame in passed if frame["type"] == "message"] == ["e:%d" % n for n in range(burst)]
    assert (code, reason) == (1008, "rate limit: too many frames, too fast")
    assert left[-1]["handle"] == "eager" and after[0]["message"] == "still here"


def test_sockets_per_client_address_are_capped_with_429_behind_proxy_headers(production):
    stack = production(workers=2, daphne_args=["--proxy-headers"], CHAT_SOCKETS_PER_CLIENT="3")

    def from_address(address):
        return join(stack.port, "crowd", additional_headers={"X-Forwarded-For": address})

    async def main():
        first = [await from_address("203.0.113.9").__aenter__() for _ in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            await from_address("203.0.113.9").__aenter__()
        async with from_address("198.51.100.4") as other:
            await joined(other)
        await first[0].close()
        async with from_address("203.0.113.9") as again:
            await joined(again)
        # Loopback clients (a proxy on this host) are not counted.
        local = [await join(stack.port, "crowd").__aenter__() for _ in range(5)]
        await asyncio.gather(*(ws.close() for ws in first[1:] + local))
        return refused.value.response

    response = run(main())
    assert (response.status_code, response.reason_phrase) == (429, "at most 3 open connections per client")
    assert lines(stack.logs(stack.daphnes), r"\brefused a socket from 203\.0\.113\.9 with 429: 3 open already ")


@pytest.fixture(params=["runserver", "production"])
def server_port(request):
    if request.param == "runserver":
        return request.getfixturevalue("runserver").port
    return request.getfixturevalue("production")(workers=2).port


def test_text_no_database_or_encoder_takes_gets_an_error_and_the_room_is_not_poisoned(server_port):
    bad = [json.dumps({"message": "\ud800"}), json.dumps({"message": "a\u0000b"}), "a\x00b", "bell\x07"]

    async def main():
        async with join(server_port, "text") as ws:
            await joined(ws)
            errors = []
            for frame in bad:
                await ws.send(frame)
                errors.append(await next_frame(ws))
            await ws.send("[" * 1900)
            nested = (await messages(ws, 1))[0]["message"]
        return errors, nested, await still_chatting(server_port, "text")

    errors, nested, (said, history) = run(main())
    assert [(error["type"], error["code"]) for error in errors] == [("error", "invalid_text")] * len(bad)
    assert "U+D800" in errors[0]["detail"] and "U+0000" in errors[1]["detail"]
    assert nested == "[" * 1900
    assert said == "still here" and history == ["[" * 1900, "still here"]


def test_one_room_however_its_name_is_typed_and_no_invisible_or_bidi_handles(server_port):
    async def main():
        async with join(server_port, "caf\u00e9", "ann") as nfc, join(server_port, "cafe\u0301", "bob") as nfd:
            await joined(nfc)
            welcome, _ = await joined(nfd)
            await nfd.send("one room")
            heard = (await messages(nfc, 1))[0]
        refusals = []
        for handle in ("\u3164", "a\u202eb", "\u200b"):
            async with join(server_port, "names", handle) as refused:
                refusals.append(await next_frame(refused))
                await refused.wait_closed()
                refusals[-1]["close"] = refused.close_code
        return welcome, heard, refusals

    welcome, heard, refusals = run(main())
    assert welcome["room"] == "caf\u00e9" and sorted(welcome["members"]) == ["ann", "bob"]
    assert (heard["room"], heard["message"]) == ("caf\u00e9", "one room")
    assert [(frame["code"], frame["close"]) for frame in refusals] == [("bad_handle", 4400)] * 3


def queue_for_storing(stack, message):
    """A delivered message waiting to be stored, as the delivery script leaves it (chat/lua/deliver.lua)."""
    redis.StrictRedis.from_url(stack.redis_url).rpush(recent.QUEUE_KEY, json.dumps(message))


def test_a_message_the_database_refuses_never_loses_the_others_in_its_batch(production, postgres_server):
    stack = production(workers=1, database_url=postgres_server.create_database("nul_batch"))
    for seq in range(1, 6):
        text = "a\u0000b" if seq == 3 else "fine %d" % seq
        queue_for_storing(stack, {"room": "nul", "seq": seq, "handle": "ann", "message": text, "ts": 1764000000000})
    deadline = time.monotonic() + TIMEOUT
    while stack.stored_seqs("nul") != [1, 2, 4, 5]:  # stored off the delivery path, telling no one
        assert time.monotonic() < deadline, "stored: %s" % stack.stored_seqs("nul")
        time.sleep(0.05)
    assert lines(stack.logs(stack.workers), r"\bmessage 3 of room 'nul' not stored: the database refused it: ")


def test_messages_waiting_to_be_stored_are_stored_while_no_daphne_runs(production):
    stack = production(workers=1, daphnes=0)  # a restart or a deploy
    for seq in (1, 2):
        queue_for_storing(stack, {"room": "nodaphne", "seq": seq, "handle": "ann", "message": "m", "ts": 1764000000000})
    deadline = time.monotonic() + TIMEOUT
    while stack.stored_seqs("nodaphne") != [1, 2]:  # the clock's chat.store, every STORE_INTERVAL
        assert time.monotonic() < deadline, "stored: %s" % stack.stored_seqs("nodaphne")
        time.sleep(0.05)


def server_env(**env):
    """The environment of a server started by hand: ours without DEBUG and SECRET_KEY, plus ``env``."""
    base = {key: value for key, value in os.environ.items() if key not in ("DEBUG", "SECRET_KEY")}
    return dict(base, **env)


def test_daphne_and_runworker_never_fall_back_to_debug_or_the_development_key(production, tmp_path):
    stack = production(workers=1)
    bare = server_env(REDIS_URL=stack.redis_url, SQLITE_PATH=str(tmp_path / "db.sqlite3"))
    for argv in (["daphne", "-p", "0", "channels_example.asgi:channel_layer"], ["python", "manage.py", "runworker"]):
        done = subprocess.run([str(Path(sys.executable).parent / argv[0])] + argv[1:], cwd=ROOT, env=bare,
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in done.stderr
    # Given a SECRET_KEY, daphne runs with DEBUG off: a 404 is the plain page, not Django's debug page.
    page = http_body(stack.port, "/nowhere/")
    assert page.startswith("HTTP/1.1 404") and "URLconf" not in page and "SECRET" not in page


def test_runserver_keeps_its_development_defaults_with_no_environment_at_all(start_runserver):
    server = start_runserver(DEBUG=None, SECRET_KEY=None)
    page = http_body(server.port, "/nowhere/")
    assert page.startswith("HTTP/1.1 404") and "Using the URLconf defined in" in page


def http_body(port, path, headers=""):
    head = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n" % (path, headers)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        connection.sendall(head.encode("latin-1"))
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(chunk)


def test_every_page_carries_the_security_headers(production):
    stack = production(workers=1)
    page, seed = http_body(stack.port, "/"), http_body(stack.port, "/seed/")
    head = page.split("\r\n\r\n")[0].lower()
    assert "x-content-type-options: nosniff" in head and "x-frame-options: deny" in head
    assert "referrer-policy: same-origin" in head
    policy = next(line for line in head.splitlines() if line.startswith("content-security-policy:"))
    assert "default-src 'self'" in policy and "ws://127.0.0.1" in policy and "unsafe-inline" not in policy
    seed_policy = next(line for line in seed.lower().split("\r\n\r\n")[0].splitlines()
                       if line.startswith("content-security-policy:"))
    assert "script-src 'self' 'unsafe-inline'" in seed_policy


def test_scripts_prod_guards_its_redis_and_leaves_nothing_behind(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(SECRET_KEY="scripts-prod-test", PORT=str(free_port()), WORKERS="1", TMPDIR=str(tmp_path))
    launcher = subprocess.Popen([str(Path(ROOT) / "scripts" / "prod")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        for line in launcher.stdout:
            lines.append(line)
            if "chat at http://" in line:
                break
        redis_url = next(re.search(r"REDIS_URL=(\S+)", line).group(1) for line in lines if "REDIS_URL=" in line)
        port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(redis.exceptions.ResponseError, match="NOAUTH|Authentication required"):
            redis.StrictRedis(port=port).ping()
        guarded = redis.StrictRedis.from_url(redis_url)
        assert guarded.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert int(guarded.config_get("maxmemory")["maxmemory"]) == 256 * MB
        assert guarded.config_get("bind")["bind"] == "127.0.0.1"
        started = [int(pid) for pid in subprocess.run(["pgrep", "-s", str(launcher.pid)], capture_output=True,
                                                      text=True).stdout.split()]
        started += [int(pid) for pid in subprocess.run(["pgrep", "-f", "redis-server.*%d|channels_example.topology" % port],
                                                       capture_output=True, text=True).stdout.split()]
    finally:
        os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C
        rest = launcher.communicate(timeout=TIMEOUT)[0]
    assert "stopped Redis" in rest
    assert [pid for pid in started if _alive(pid)] == []
    assert list(tmp_path.glob("channels_example-redis-*")) == []


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/%d/stat" % pid) as stat:
        return stat.read().split(") ")[1][0] != "Z"
