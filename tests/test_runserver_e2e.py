"""End to end: the real `manage.py runserver` (in-memory layer) and real WebSocket clients."""
import json
import sqlite3
import time
import urllib.request

import pytest
from django.conf import settings
from websockets.exceptions import ConnectionClosed

from channels_example.chat import protocol
from tests.chatclient import each_sends_on_open, frames_until, join, joined, messages, next_frame, run
from tests.logs import lines, not_in_the_format, wait_for_line


def test_each_of_100_clients_that_send_on_open_gets_its_own_message_back(runserver):
    assert run(each_sends_on_open(runserver.port, 100)) == ["hello world %d" % number for number in range(100)]
    assert lines(runserver.read_log(), r"\bKeyError\b") == []


def test_burst_of_300_messages_from_one_client_arrives_complete(runserver):
    async def main():
        async with join(runserver.port, "burst") as ws:
            for number in range(300):
                await ws.send(json.dumps({"message": str(number)}))
            return [frame["message"] for frame in await messages(ws, 300)]

    received = run(main())
    assert sorted(received, key=int) == [str(number) for number in range(300)]


def test_message_reaches_the_room_and_no_one_else(runserver):
    async def main():
        async with join(runserver.port, "聊天室", "小明") as ann, join(runserver.port, "聊天室") as bob, \
                join(runserver.port, "elsewhere") as stranger:
            await ann.send("你好")
            got = (await messages(bob, 1))[0]
            await stranger.send("only me")
            alone = await messages(stranger, 1)
            return got, alone

    got, alone = run(main())
    assert (got["room"], got["handle"], got["message"]) == ("聊天室", "小明", "你好")
    assert [frame["message"] for frame in alone] == ["only me"]


def test_hostile_path_is_refused_at_once_with_a_reason(runserver):
    async def main():
        async with join(runserver.port, "a/b") as ws:
            frame = await next_frame(ws)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return frame, closed.value.rcvd.code

    frame, code = run(main())
    assert frame["code"] == "invalid_room" and "one path segment" in frame["detail"]
    assert code == protocol.CLOSE_REFUSED
    assert lines(runserver.read_log(), r"\brefused 127\.0\.0\.1:\d+: path '/a/b/': a room name is one path segment")


def test_binary_frame_gets_an_error_frame_and_the_socket_keeps_working(runserver):
    async def main():
        async with join(runserver.port, "binary") as ws:
            await joined(ws)
            await ws.send(b"\x89PNG")
            error = await next_frame(ws)
            await ws.send("still here")
            return error, (await messages(ws, 1))[0]

    error, message = run(main())
    assert error["code"] == "binary_frame"
    assert message["message"] == "still here"


def test_invalid_utf8_text_frame_closes_only_that_socket_with_1007(runserver):
    async def main():
        async with join(runserver.port, "utf8") as bystander, join(runserver.port, "utf8") as ws:
            # A text frame whose payload is not UTF-8. Autobahn fails the connection
            # (RFC 6455 7.1.7); with failByDrop off (channels_example.interface) it says why.
            await ws.send(b"\xff\xfe", text=True)
            with pytest.raises(ConnectionClosed) as closed:
                await frames_until(ws, lambda frames: False)
            await bystander.send("fine")
            return closed.value, (await messages(bystander, 1))[0]["message"]

    closed, message = run(main())
    assert closed.rcvd.code == 1007 and "UTF-8" in closed.rcvd.reason
    assert message == "fine"


def test_page_and_seed_page_are_served(runserver):
    import urllib.request

    page = urllib.request.urlopen("http://127.0.0.1:%d/" % runserver.port, timeout=10).read().decode()
    seed = urllib.request.urlopen("http://127.0.0.1:%d/seed/" % runserver.port, timeout=10).read().decode()
    assert "WebSocketTest()" in page
    assert '"127.0.0.1:%d" + "/channels_example/"' % runserver.port in seed


def test_burst_of_500_from_one_client_arrives_in_order_across_runserver_threads(runserver):
    async def main():
        async with join(runserver.port, "threads") as sender, join(runserver.port, "threads") as member:
            for number in range(500):
                await sender.send(str(number))
            return [[frame["message"] for frame in await messages(ws, 500)] for ws in (sender, member)]

    for received in run(main()):
        assert received == [str(number) for number in range(500)]


def test_a_frame_over_the_frame_limit_gets_an_error_frame_and_the_socket_keeps_working(runserver):
    async def main():
        async with join(runserver.port, "huge") as ws:
            await ws.send("x" * settings.MAX_FRAME_LENGTH * 4)
            errors = await frames_until(ws, lambda got: any(frame["type"] == "error" for frame in got))
            await ws.send("still here")
            return errors[-1], (await messages(ws, 1))[0]

    error, message = run(main())
    assert error["code"] == "message_too_long"
    assert message["message"] == "still here"


def test_a_megabyte_frame_is_closed_with_1009_before_daphne_holds_it(runserver):
    async def main():
        async with join(runserver.port, "huge") as ws, join(runserver.port, "huge") as bystander:
            await joined(ws)
            try:
                await ws.send("x" * 1024 * 1024)
            except ConnectionClosed:
                pass
            await ws.wait_closed()
            await bystander.send("still here")
            return ws.close_code, (await messages(bystander, 1))[0]

    code, message = run(main())
    assert code == 1009 and settings.WEBSOCKET_MAX_PAYLOAD < 1024 * 1024
    assert message["message"] == "still here"


def test_the_clock_thread_of_runserver_stores_what_the_room_hears(runserver, sqlite_env):
    async def main():
        async with join(runserver.port, "kept") as ws:
            await joined(ws)
            await ws.send("remember me")
            await messages(ws, 1)

    run(main())
    deadline = time.monotonic() + 10
    while stored_messages(sqlite_env["SQLITE_PATH"], "kept") != ["remember me"]:
        assert time.monotonic() < deadline, "not stored by the clock's chat.store"
        time.sleep(0.05)  # the database has no event to await: poll it


def stored_messages(path, room):
    with sqlite3.connect(path, timeout=20) as connection:
        return [text for text, in connection.execute(
            "SELECT message FROM channels_example_message WHERE room = ? ORDER BY seq", (room,))]


# What runserver prints besides its log lines: Django's checks and channels' banner.
RUNSERVER_BANNER = (r"^(Performing system checks\.\.\.|System check identified |\w+ \d\d, \d{4} - \d\d:\d\d:\d\d$|"
                    r"Django version |Starting Channels development server at |Channel layer |Quit the server with )")


def test_runserver_writes_every_line_in_the_one_format_and_says_once_what_it_listens_on(runserver):
    urllib.request.urlopen("http://127.0.0.1:%d/" % runserver.port, timeout=30).close()

    async def visit():
        async with join(runserver.port, "lobby", "ann") as ws:
            await joined(ws)

    run(visit())
    log = wait_for_line(runserver.read_log, r" INFO channels_example\.consumers \S+ left 'lobby' as ann, code 1000$")

    assert not_in_the_format(log, besides=RUNSERVER_BANNER) == []
    assert len(lines(log, r" INFO django\.channels Listening on channels ")) == 1  # not once per worker thread
    assert lines(log, r" INFO daphne\.access 127\.0\.0\.1:\d+ GET / 200, \d+ bytes in \d+\.\d{3} s$")
    assert lines(log, r" INFO daphne\.access 127\.0\.0\.1:\d+ WebSocket /lobby/ connected$")
