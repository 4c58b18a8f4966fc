"""The study note's echo at /channels_example/ (channels_example/echo.py), and every other path a room.

Through channels' own test client on the in-memory layer, then end to end under runserver
and on the production topology (daphne, two runworkers, Redis).
"""
import asyncio

from channels import DEFAULT_CHANNEL_LAYER, channel_layers
from channels.exceptions import DenyConnection
from channels.message import Message
from channels.test import ChannelTestCase, WSClient
from django.conf import settings
from websockets.asyncio.client import connect

from channels_example import consumers, echo
from channels_example.chat import ordering
from tests.chatclient import TIMEOUT, join, joined, run
from tests.logs import CLOSED_WITH_1013, TRACEBACK, lines
from tests.test_consumers import BROWSER

NOTE_PATH = "/channels_example/"


def consumer_for(channel, path):
    """The consumer channel_routing gives a message of ``channel`` from a socket on ``path``."""
    message = Message({"reply_channel": "daphne.response.test!x", "path": path, "order": 1}, channel,
                      channel_layers[DEFAULT_CHANNEL_LAYER])
    return channel_layers[DEFAULT_CHANNEL_LAYER].router.match(message)[0]


class TestRouting(ChannelTestCase):
    def test_every_message_of_a_socket_on_the_note_page_path_goes_to_the_echo(self):
        for channel, expected in [("websocket.connect", echo.ws_connect), ("websocket.receive", echo.ws_message),
                                  ("websocket.disconnect", echo.ws_disconnect)]:
            with self.subTest(channel=channel):
                self.assertIs(consumer_for(channel, NOTE_PATH), expected)

    def test_every_other_path_is_a_room(self):
        for path in ["/", "/lobby/", "/channels_example/x/", "/channels_examples/", "/聊天室/", ""]:
            for channel, expected in [("websocket.connect", consumers.ws_connect),
                                      ("websocket.receive", consumers.ws_message),
                                      ("websocket.disconnect", consumers.ws_disconnect)]:
                with self.subTest(path=path, channel=channel):
                    self.assertIs(consumer_for(channel, path), expected)


class TestEcho(ChannelTestCase):
    def echo_client(self):
        client = WSClient(ordered=True)  # numbers frames as daphne does: connect 0, then 1, 2...
        client.send_and_consume("websocket.connect", BROWSER, path=NOTE_PATH)  # fails unless accepted
        return client

    def test_the_note_page_path_is_accepted_and_the_text_comes_back_to_the_sender_alone(self):
        sender, room_member = self.echo_client(), WSClient()
        room_member.send_and_consume("websocket.connect", BROWSER, path="/lobby/")
        while room_member.receive() is not None:  # its welcome, history and join
            pass
        sender.send_and_consume("websocket.receive", text="hello world", path=NOTE_PATH)
        self.assertEqual(sender.receive(json=False), "hello world")
        self.assertIsNone(sender.receive())
        self.assertIsNone(room_member.receive())

    def test_the_text_comes_back_exactly_as_sent_even_when_it_is_json(self):
        client = self.echo_client()
        for text in ['{"message": "hi"}', "  你好  ", "x" * settings.MAX_FRAME_LENGTH]:
            client.send_and_consume("websocket.receive", text=text, path=NOTE_PATH)
            self.assertEqual(client.receive(json=False), text)

    def test_a_page_from_another_host_or_a_client_without_origin_is_denied(self):
        for headers in ([[b"origin", b"http://evil.example"]], []):
            with self.subTest(headers=headers):
                client = WSClient()
                client.send("websocket.connect", {"headers": headers}, path=NOTE_PATH)
                with self.assertRaises(DenyConnection):
                    client.consume("websocket.connect", check_accept=False)

    def test_a_binary_frame_gets_the_error_frame_a_room_sends(self):
        client = self.echo_client()
        client.send_and_consume("websocket.receive", {"bytes": b"\x89PNG"}, path=NOTE_PATH)
        frame = client.receive()
        self.assertEqual((frame["type"], frame["code"]), ("error", "binary_frame"))
        client.send_and_consume("websocket.receive", text="still here", path=NOTE_PATH)
        self.assertEqual(client.receive(json=False), "still here")

    def test_replies_come_back_in_the_order_sent_when_frames_are_handled_out_of_order(self):
        client = self.echo_client()
        for order in (3, 1, 2):
            client.channel_layer.send("websocket.receive", {"reply_channel": client.reply_channel,
                                                            "path": NOTE_PATH, "order": order,
                                                            "text": "frame %d" % order})
        for _ in range(3):
            client.consume("websocket.receive")
        self.assertEqual([client.receive(json=False) for _ in range(3)], ["frame 1", "frame 2", "frame 3"])

    def test_daphne_sees_each_echoed_frame_as_handled(self):
        # daphne's backlog (interface/frames.py): a socket whose frames never count as handled is closed with 1013.
        client = self.echo_client()
        for text in ("one", "two"):
            client.send_and_consume("websocket.receive", text=text, path=NOTE_PATH)
        self.assertEqual(ordering.next_order(client.reply_channel), 3)

    def test_disconnect_sends_nothing(self):
        client = self.echo_client()
        client.send_and_consume("websocket.disconnect", {"code": 1001}, path=NOTE_PATH)
        self.assertIsNone(client.receive())


async def the_note_page(port, then_send="second"):
    """What the note's page does (connect, send "hello world"), then one more frame: every frame received."""
    async with connect("ws://127.0.0.1:%d%s" % (port, NOTE_PATH), origin="http://127.0.0.1:%d" % port,
                       open_timeout=TIMEOUT) as ws:
        await ws.send("hello world")
        await ws.send(then_send)
        # Replies come in the order sent: once the second is back, nothing came before or between.
        return [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(2)]


async def a_room_still_answers(port):
    async with join(port, "channels_examples") as ws:
        welcome, _ = await joined(ws)
        return welcome["room"]


async def empty_messages(port):
    """An empty text message, the same sent as three empty fragments, then "after": every frame received."""
    async with connect("ws://127.0.0.1:%d%s" % (port, NOTE_PATH), origin="http://127.0.0.1:%d" % port,
                       open_timeout=TIMEOUT) as ws:
        await ws.send("")
        await ws.send(["", "", ""])
        await ws.send("after")
        return [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(3)]


def test_the_echo_sends_back_an_empty_message_as_it_does_any_other(runserver):
    assert run(empty_messages(runserver.port)) == ["", "", "after"]


def test_under_runserver_the_note_page_path_echoes_and_other_paths_are_rooms(runserver):
    assert run(the_note_page(runserver.port)) == ["hello world", "second"]
    assert run(a_room_still_answers(runserver.port)) == "channels_examples"
    assert lines(runserver.read_log(), TRACEBACK) == []


def test_on_daphne_and_two_workers_the_echo_keeps_a_burst_in_order_and_logs_no_error(production):
    stack = production(workers=2)

    async def burst():
        async with connect("ws://127.0.0.1:%d%s" % (stack.port, NOTE_PATH), origin="http://127.0.0.1:%d" % stack.port,
                           open_timeout=TIMEOUT, max_queue=None) as ws:
            for number in range(200):
                await ws.send(str(number))
            return [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(200)]

    assert run(the_note_page(stack.port)) == ["hello world", "second"]
    assert run(burst()) == [str(number) for number in range(200)]
    assert run(a_room_still_answers(stack.port)) == "channels_examples"
    logs = stack.logs()
    assert lines(logs, TRACEBACK) == [] and lines(logs, r": its socket is in no room$") == []
    # No socket was closed with 1013: by daphne, nor as a room's leave line gives its close code.
    assert lines(logs, CLOSED_WITH_1013) == [] and lines(logs, r"\bleft '.*' as .*, code 1013$") == []
