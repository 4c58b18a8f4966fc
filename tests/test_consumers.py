"""The three consumers, driven through channels' own test client on the in-memory layer."""
import json

from channels.exceptions import DenyConnection
from channels.sessions import session_for_reply_channel
from channels.test import ChannelTestCase, WSClient

from channels_example import protocol, rooms


# What daphne sends for a page served from 127.0.0.1 (WSClient's own headers are a dict,
# which channels 1.1.8's origin check cannot read).
BROWSER = {"headers": [[b"origin", b"http://127.0.0.1:8000"], [b"host", b"127.0.0.1:8000"]]}


class ConsumerTestCase(ChannelTestCase):
    def connect(self, path="/lobby/"):
        client = WSClient()
        client.send_and_consume("websocket.connect", BROWSER, path=path)
        return client

    def say(self, client, text, path="/lobby/"):
        client.send_and_consume("websocket.receive", text=text, path=path)

    def session_of(self, client):
        """The client's channel session as stored now (WSClient.session is a stale cached copy)."""
        return session_for_reply_channel(client.reply_channel)

    def reply(self, client):
        """The next raw reply to ``client``, with the JSON of its text decoded."""
        message = client.get_next_message(client.reply_channel)
        self.assertIsNotNone(message, "expected a reply")
        content = dict(message.content)
        if "text" in content:
            content["frame"] = json.loads(content.pop("text"))
        return content


class TestConnect(ConsumerTestCase):
    def test_connect_is_accepted_and_the_room_stored(self):
        client = self.connect("/lobby/")
        self.assertEqual(self.session_of(client)["room"], "lobby")
        self.assertTrue(self.session_of(client)["handle"].startswith("guest-"))

    def test_connect_to_root_joins_the_default_room(self):
        client = self.connect("/")
        self.assertEqual(self.session_of(client)["room"], rooms.DEFAULT_ROOM)

    def test_handle_from_the_query_string_is_stored(self):
        client = self.connect("/lobby/?handle=ann")
        self.assertEqual(self.session_of(client)["handle"], "ann")

    def test_hostile_paths_are_refused_at_once_with_the_reason(self):
        for path in ["/" + "x" * 101 + "/", "/a\x00b/", "/a/b/", "/lobby/?handle=" + "h" * 40]:
            with self.subTest(path=path):
                client = WSClient()
                client.send_and_consume("websocket.connect", BROWSER, path=path, check_accept=False)
                reply = self.reply(client)
                self.assertEqual(reply["close"], protocol.CLOSE_REFUSED)
                self.assertEqual(reply["frame"]["type"], "error")
                self.assertIn(reply["frame"]["code"], {"invalid_room", "bad_handle"})
                self.assertNotIn("room", self.session_of(client))

    def test_page_from_another_host_is_denied(self):
        client = WSClient()
        client.send("websocket.connect", {"headers": [[b"origin", b"http://evil.example"]]}, path="/lobby/")
        with self.assertRaises(DenyConnection):
            client.consume("websocket.connect", check_accept=False)

    def test_client_without_origin_is_denied(self):
        client = WSClient()
        client.send("websocket.connect", {"headers": []}, path="/lobby/")
        with self.assertRaises(DenyConnection):
            client.consume("websocket.connect", check_accept=False)

    def test_refusal_is_logged_with_path_and_client(self):
        client = WSClient()
        with self.assertLogs("channels_example.consumers", "WARNING") as logs:
            client.send_and_consume(
                "websocket.connect", dict(BROWSER, client=["10.1.2.3", 5555]), path="/a/b/", check_accept=False
            )
        self.assertIn("10.1.2.3:5555", logs.output[0])
        self.assertIn("'/a/b/'", logs.output[0])


class TestMessages(ConsumerTestCase):
    def test_message_reaches_every_member_of_the_room_sender_included(self):
        ann, bob = self.connect("/lobby/?handle=ann"), self.connect("/lobby/?handle=bob")
        self.say(ann, "hello world")
        for member in (ann, bob):
            frame = member.receive()
            self.assertEqual(
                (frame["type"], frame["room"], frame["handle"], frame["message"]),
                ("message", "lobby", "ann", "hello world"),
            )

    def test_message_reaches_no_one_in_another_room(self):
        ann, stranger = self.connect("/lobby/"), self.connect("/kitchen/")
        self.say(ann, "hello")
        self.assertEqual(ann.receive()["message"], "hello")
        self.assertIsNone(stranger.receive())

    def test_unicode_room_and_text_work(self):
        ann, bob = self.connect("/聊天室/?handle=小明"), self.connect("/聊天室/")
        self.say(ann, "你好", path="/聊天室/")
        frame = bob.receive()
        self.assertEqual((frame["room"], frame["handle"], frame["message"]), ("聊天室", "小明", "你好"))

    def test_json_message_with_handle(self):
        ann = self.connect()
        self.say(ann, json.dumps({"message": "hi", "handle": "annie"}))
        frame = ann.receive()
        self.assertEqual((frame["handle"], frame["message"]), ("annie", "hi"))

    def test_bad_frames_get_an_error_frame_reach_no_one_and_leave_the_socket_usable(self):
        bad_frames = [
            {"bytes": b"\x89PNG"},
            {"text": ""},
            {"text": "   "},
            {"text": "x" * (protocol.MAX_MESSAGE_LENGTH + 1)},
            {"text": json.dumps({"message": "hi", "handle": "h" * 100})},
            {"text": json.dumps({"message": "hi", "handle": ["not", "a", "string"]})},
        ]
        sender, member = self.connect(), self.connect()
        for content in bad_frames:
            with self.subTest(content=str(content)[:40]):
                sender.send_and_consume("websocket.receive", content, path="/lobby/")
                self.assertEqual(sender.receive()["type"], "error")
                self.assertIsNone(member.receive())
        self.say(sender, "still here")
        self.assertEqual(member.receive()["message"], "still here")

    def test_frame_from_a_socket_in_no_room_gets_an_error(self):
        ghost = WSClient()
        self.say(ghost, "anyone?")
        self.assertEqual(ghost.receive()["code"], "not_joined")


class TestOrder(ConsumerTestCase):
    def test_frames_handled_out_of_order_reach_the_room_in_the_order_sent(self):
        ann, bob = self.connect(), self.connect()
        # Daphne numbers a socket's frames; here frame 3 and then 1 are handled first.
        for order in (3, 1, 4, 2):
            ann.send("websocket.receive", {"order": order, "text": "frame %d" % order}, path="/lobby/")
        for _ in range(4):
            ann.consume("websocket.receive")
        self.assertEqual([bob.receive()["message"] for _ in range(4)], ["frame %d" % n for n in (1, 2, 3, 4)])

    def test_error_frame_keeps_its_place_in_the_order(self):
        ann = self.connect()
        ann.send("websocket.receive", {"order": 2, "text": "second"}, path="/lobby/")
        ann.send("websocket.receive", {"order": 1, "text": " "}, path="/lobby/")
        ann.consume("websocket.receive")
        self.assertIsNone(ann.receive())
        ann.consume("websocket.receive")
        self.assertEqual([ann.receive()["type"], ann.receive()["type"]], ["error", "message"])


class TestDisconnect(ConsumerTestCase):
    def test_disconnect_removes_the_member(self):
        ann, bob = self.connect(), self.connect()
        bob.send_and_consume("websocket.disconnect", {"code": 1000}, path="/lobby/")
        self.say(ann, "bye")
        self.assertEqual(ann.receive()["message"], "bye")
        self.assertIsNone(bob.receive())

    def test_frame_handled_after_its_sockets_disconnect_still_reaches_the_room(self):
        # With several workers the disconnect can overtake the socket's last frame.
        ann, bob = self.connect(), self.connect()
        ann.send_and_consume("websocket.disconnect", {"code": 1000}, path="/lobby/")
        self.say(ann, "sent just before closing")
        self.assertEqual(bob.receive()["message"], "sent just before closing")
        self.assertEqual(self.session_of(ann).get_expiry_age(), 60)

    def test_disconnect_of_a_refused_socket_is_harmless(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", BROWSER, path="/a/b/", check_accept=False)
        self.assertEqual(self.reply(client)["close"], protocol.CLOSE_REFUSED)
        # The note's ws_disconnect read channel_session['room'] here and raised KeyError.
        client.send_and_consume("websocket.disconnect", {"code": 1006}, path="/a/b/")
        self.assertIsNone(client.receive())
