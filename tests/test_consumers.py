"""The three consumers, driven through channels' own test client on the in-memory layer."""
import json
from unittest import mock

from channels.exceptions import DenyConnection
from channels.sessions import session_for_reply_channel
from channels.test import ChannelTestCase, WSClient
from django.conf import settings

from channels_example.chat import history, protocol, rooms
from channels_example.models import Message


# What daphne sends for a page served from 127.0.0.1 (WSClient's own headers are a dict,
# which channels 1.1.8's origin check cannot read).
BROWSER = {"headers": [[b"origin", b"http://127.0.0.1:8000"], [b"host", b"127.0.0.1:8000"]]}


class ConsumerTestCase(ChannelTestCase):
    def setUp(self):
        super().setUp()
        self.clients = []

    def connect(self, path="/lobby/"):
        """A joined client; its welcome and history frames are kept as ``.welcome`` and ``.history``."""
        client = WSClient()
        client.send_and_consume("websocket.connect", BROWSER, path=path)
        client.welcome, client.history = client.receive(), client.receive()
        self.clients.append(client)
        # The room's join event, which every member of its room (the joiner too) has received.
        for member in self.clients:
            if member.welcome["room"] == client.welcome["room"]:
                event = member.receive()
                self.assertEqual((event["type"], event["event"]), ("presence", "join"))
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
        with self.assertLogs("channels_example.chat.errors", "WARNING") as logs:
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

    def test_a_frame_naming_another_speaker_is_refused_and_reaches_no_one(self):
        ann, bob = self.connect("/lobby/?handle=ann"), self.connect("/lobby/?handle=bob")
        self.say(bob, json.dumps({"message": "send me your password", "handle": "ann"}))
        self.assertEqual(bob.receive()["code"], "handle_not_allowed")
        self.assertIsNone(ann.receive())

    def test_bad_frames_get_an_error_frame_reach_no_one_and_leave_the_socket_usable(self):
        bad_frames = [
            {"bytes": b"\x89PNG"},
            {"text": ""},
            {"text": "   "},
            {"text": "x" * (settings.MAX_MESSAGE_LENGTH + 1)},
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
        self.assertEqual(ann.receive()["event"], "leave")
        self.say(ann, "bye")
        self.assertEqual(ann.receive()["message"], "bye")
        self.assertIsNone(bob.receive())

    def test_frame_handled_after_its_sockets_disconnect_still_reaches_the_room(self):
        # With several workers the disconnect can overtake the socket's last frame.
        ann, bob = self.connect(), self.connect()
        ann.send_and_consume("websocket.disconnect", {"code": 1000}, path="/lobby/")
        self.assertEqual(bob.receive()["event"], "leave")
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


class TestJoining(ConsumerTestCase):
    def test_joiner_is_told_its_handle_and_who_is_in_the_room(self):
        ann = self.connect("/lobby/?handle=ann")
        bob = self.connect("/lobby/?handle=bob")
        self.assertEqual({key: bob.welcome[key] for key in ("type", "room", "handle", "signed_in", "staff", "members")},
                         {"type": "welcome", "room": "lobby", "handle": "bob", "signed_in": False, "staff": False,
                          "members": ["ann", "bob"]})
        self.assertEqual(ann.welcome["members"], ["ann"])

    def test_generated_handle_is_the_one_in_the_welcome(self):
        guest = self.connect("/lobby/")
        self.assertTrue(guest.welcome["handle"].startswith("guest-"))
        self.assertEqual(guest.welcome["handle"], self.session_of(guest)["handle"])

    def test_the_room_hears_joins_and_leaves_with_the_count(self):
        ann = self.connect("/lobby/?handle=ann")
        bob = WSClient()
        bob.send_and_consume("websocket.connect", BROWSER, path="/lobby/?handle=bob")
        self.assertEqual(ann.receive(), {"type": "presence", "room": "lobby", "event": "join", "handle": "bob",
                                         "signed_in": False, "members": 2})
        bob.send_and_consume("websocket.disconnect", {"code": 1000}, path="/lobby/")
        self.assertEqual(ann.receive(), {"type": "presence", "room": "lobby", "event": "leave", "handle": "bob",
                                         "signed_in": False, "members": 1})

    def test_a_room_that_never_spoke_has_empty_history(self):
        ann = self.connect()
        self.assertEqual(ann.history, {"type": "history", "room": "lobby", "messages": [], "upto": 0})


class TestHistory(ConsumerTestCase):
    def test_messages_are_numbered_in_their_room(self):
        ann, stranger = self.connect("/lobby/"), self.connect("/kitchen/")
        for text in ("one", "two"):
            self.say(ann, text)
        self.say(stranger, "elsewhere", path="/kitchen/")
        self.assertEqual([ann.receive()["seq"] for _ in range(2)], [1, 2])
        self.assertEqual(stranger.receive()["seq"], 1)

    def test_joiner_receives_the_rooms_messages_oldest_first(self):
        ann = self.connect("/lobby/?handle=ann")
        for text in ("one", "two", "three"):
            self.say(ann, text)
            ann.receive()
        bob = self.connect("/lobby/?handle=bob")
        self.assertEqual([(m["seq"], m["handle"], m["message"]) for m in bob.history["messages"]],
                         [(1, "ann", "one"), (2, "ann", "two"), (3, "ann", "three")])
        self.assertEqual(bob.history["upto"], 3)
        self.assertEqual(set(bob.history["messages"][0]),
                         {"type", "room", "handle", "signed_in", "sender", "message", "ts", "seq"})

    def test_history_holds_only_the_last_HISTORY_LENGTH_messages(self):
        ann = self.connect()
        with self.settings(HISTORY_LENGTH=3):
            for number in range(5):
                self.say(ann, "m%d" % number)
                ann.receive()
            bob = self.connect()
        self.assertEqual([m["message"] for m in bob.history["messages"]], ["m2", "m3", "m4"])

    def test_each_delivered_message_is_stored_off_the_delivery_path(self):
        ann = self.connect("/lobby/?handle=ann")
        self.say(ann, "keep me")
        self.assertFalse(Message.objects.exists())
        ann.send_and_consume("chat.store", {"from": "test"})  # the timed store
        stored = Message.objects.get()
        self.assertEqual((stored.room, stored.seq, stored.handle, stored.message), ("lobby", 1, "ann", "keep me"))
        self.assertEqual(int(stored.created.timestamp() * 1000), ann.receive()["ts"])

    def test_the_timed_store_stores_the_messages_waiting_together(self):
        ann = self.connect("/lobby/?handle=ann")
        for text in ("one", "two", "three"):
            self.say(ann, text)
        ann.send_and_consume("chat.store", {"from": "test"})  # the timed store
        self.assertEqual(list(Message.objects.order_by("seq").values_list("seq", "message")),
                         [(1, "one"), (2, "two"), (3, "three")])
        self.assertIsNone(self.get_next_message("chat.history"))

    def test_the_timed_store_takes_at_most_STORE_BATCHES_batches_and_the_next_one_the_rest(self):
        ann = self.connect("/lobby/?handle=ann")
        for number in range(5):
            self.say(ann, "m%d" % number)
        with mock.patch.object(history, "STORE_BATCH", 2), mock.patch.object(history, "STORE_BATCHES", 2):
            ann.send_and_consume("chat.store", {"from": "test"})
            self.assertEqual(list(Message.objects.order_by("seq").values_list("seq", flat=True)), [1, 2, 3, 4])
            ann.send_and_consume("chat.store", {"from": "test"})
        self.assertEqual(list(Message.objects.order_by("seq").values_list("seq", flat=True)), [1, 2, 3, 4, 5])

    def test_storing_a_message_twice_keeps_one_row(self):
        stored = {"room": "lobby", "seq": 1, "handle": "ann", "message": "hi", "ts": 1764000000123}
        history.store(stored)
        history.store(stored)
        self.assertEqual(Message.objects.count(), 1)

    def test_retention_prunes_the_oldest_messages_of_the_room_only(self):
        with self.settings(HISTORY_RETENTION=5, HISTORY_PRUNE_EVERY=3):
            for seq in range(1, 11):
                for room in ("lobby", "kitchen"):
                    history.store({"room": room, "seq": seq, "handle": "ann", "message": str(seq), "ts": 0})
        kept = list(Message.objects.filter(room="lobby").values_list("seq", flat=True).order_by("seq"))
        # Pruned at seq 9 (every 3rd) down to the last 5; 10 arrived after.
        self.assertEqual(kept, [5, 6, 7, 8, 9, 10])

    def test_after_a_restart_history_comes_from_the_database_and_numbering_goes_on(self):
        for seq, text in enumerate(["before", "the", "restart"], 1):
            history.store({"room": "lobby", "seq": seq, "handle": "ann", "message": text, "ts": 1764000000000 + seq})
        bob = self.connect("/lobby/?handle=bob")
        self.assertEqual([(m["seq"], m["message"], m["ts"]) for m in bob.history["messages"]],
                         [(1, "before", 1764000000001), (2, "the", 1764000000002), (3, "restart", 1764000000003)])
        self.assertEqual(bob.history["upto"], 3)
        self.say(bob, "after")
        self.assertEqual(bob.receive()["seq"], 4)
