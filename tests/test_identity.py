"""Who is speaking: Django accounts on the socket through channels' own auth decorators, guests'
names, moderation, and the cost of it all per message; driven through channels' WSClient."""
import json
from importlib import import_module

from channels.test import ChannelTestCase, WSClient
from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from channels_example import accounts
from channels_example.chat import identity
from channels_example.models import Message, ModerationAction
from tests.test_consumers import BROWSER


class IdentityTestCase(ChannelTestCase):
    def setUp(self):
        super().setUp()
        users = get_user_model().objects
        self.ann = users.create_user("ann", password="ann-password-1")
        self.mod = users.create_user("mod", password="mod-password-1", is_staff=True)
        accounts._users.clear()

    def client_for(self, user):
        """A WSClient with the session cookie of a browser where ``user`` logged in (HTTP sessions
        in the database, channel sessions where settings keep them)."""
        request = type("Request", (), {"session": import_module(settings.SESSION_ENGINE).SessionStore(), "META": {}})
        login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
        request.session.save()
        client = WSClient()
        client.browser_session = request.session.session_key
        return client

    def connect(self, client, path="/lobby/"):
        """Connect ``client`` with its cookies, as a browser would; its first frames, or its refusal."""
        cookies = client.get_cookies()
        if getattr(client, "browser_session", None):
            cookies[settings.SESSION_COOKIE_NAME] = client.browser_session
        cookie = "; ".join("%s=%s" % item for item in cookies.items() if item[1])
        headers = BROWSER["headers"] + [[b"cookie", cookie.encode("ascii")]]
        client.send_and_consume("websocket.connect", {"headers": headers}, path=path, check_accept=False)
        reply = client.get_next_message(client.reply_channel)
        if reply.content.get("close"):
            return json.loads(reply.content["text"])
        welcome, _ = client.receive(), client.receive()
        client.receive()  # its own join event
        return welcome

    def say(self, client, text):
        client.send_and_consume("websocket.receive", text=text, path="/lobby/")


# WSClient keeps its login in a session of CHANNEL_SESSION_ENGINE and sends its key as the
# session cookie; ws_connect reads the cookie with SESSION_ENGINE: for WSClient's own login,
# the two are the same engine.
@override_settings(CHANNEL_SESSION_ENGINE="django.contrib.sessions.backends.db")
class TestWSClientLogin(IdentityTestCase):
    def test_a_socket_logged_in_with_wsclient_login_speaks_as_its_username_whatever_it_asks(self):
        ann = WSClient()
        self.assertTrue(ann.login(username="ann", password="ann-password-1"))
        welcome = self.connect(ann, "/lobby/?handle=someone-else")
        self.assertEqual((welcome["handle"], welcome["signed_in"], welcome["staff"]), ("ann", True, False))
        self.say(ann, "hello")
        frame = ann.receive()
        self.assertEqual((frame["handle"], frame["signed_in"], frame["sender"]), ("ann", True, welcome["sender"]))

    def test_force_login_makes_a_staff_socket(self):
        mod = WSClient()
        mod.force_login(self.mod)
        welcome = self.connect(mod)
        self.assertEqual((welcome["handle"], welcome["staff"]), ("mod", True))


class TestSignedIn(IdentityTestCase):

    def test_the_senders_id_is_one_per_person_and_says_nothing_about_them(self):
        first, second = self.client_for(self.ann), self.client_for(self.ann)
        guest = WSClient()
        ids = [self.connect(client)["sender"] for client in (first, second, guest)]
        self.assertEqual(ids[0], ids[1])
        self.assertNotEqual(ids[0], ids[2])
        self.assertNotIn(str(self.ann.pk), ids[0])

    def test_a_chat_message_costs_no_database_query(self):
        ann = self.client_for(self.ann)
        self.connect(ann)
        self.say(ann, "the first in the room")  # a room's numbering is read from the database once
        ann.receive()
        with CaptureQueriesContext(connection) as queries:
            for number in range(10):
                self.say(ann, "message %d" % number)
                self.assertEqual(ann.receive()["message"], "message %d" % number)
        self.assertEqual(len(queries), 0, [query["sql"] for query in queries])

    def test_logging_out_closes_every_socket_of_the_user(self):
        tabs = [self.client_for(self.ann) for _ in range(2)]
        for tab in tabs:
            self.connect(tab)
        for tab in tabs:
            while tab.receive() is not None:  # the other tab's join
                pass
        accounts.close_sockets(self.ann.pk)
        for tab in tabs:
            self.assertEqual(tab.get_next_message(tab.reply_channel).content, {"close": identity.CLOSE_SIGNED_OUT})

    def test_a_new_password_closes_every_socket_of_the_user(self):
        ann = self.client_for(self.ann)
        self.connect(ann)
        self.ann.set_password("a-new-password-2")
        self.ann.save()
        self.assertEqual(ann.get_next_message(ann.reply_channel).content, {"close": identity.CLOSE_SIGNED_OUT})


class TestGuests(IdentityTestCase):
    def test_a_guest_picks_a_name_or_is_given_one(self):
        self.assertEqual(self.connect(WSClient(), "/lobby/?handle=visitor")["handle"], "visitor")
        given = self.connect(WSClient())
        self.assertTrue(given["handle"].startswith("guest-") and not given["signed_in"])

    def test_a_guest_can_never_take_a_registered_username_in_any_case(self):
        for name in ("ann", "ANN", "Ann"):
            refusal = self.connect(WSClient(), "/lobby/?handle=" + name)
            self.assertEqual(refusal["code"], "handle_taken")

    def test_a_guest_refused_a_registered_name_is_told_the_account_as_registered(self):
        refusal = self.connect(WSClient(), "/lobby/?handle=ANN")
        self.assertEqual(refusal["detail"], "ANN belongs to the account ann (a name is the same in any case): "
                                            "sign in as ann, or choose another")

    def test_within_a_room_a_name_belongs_to_one_person_at_a_time(self):
        self.connect(WSClient(), "/lobby/?handle=visitor")
        self.assertEqual(self.connect(WSClient(), "/lobby/?handle=visitor")["code"], "handle_in_use")
        self.assertEqual(self.connect(WSClient(), "/kitchen/?handle=visitor")["handle"], "visitor")

    @override_settings(CHAT_GUESTS=False)
    def test_with_guests_off_only_signed_in_users_may_join(self):
        self.assertEqual(self.connect(WSClient())["code"], "sign_in_required")
        self.assertEqual(self.connect(self.client_for(self.ann))["handle"], "ann")


class TestModeration(IdentityTestCase):
    def test_staff_delete_a_message_for_everyone_and_the_action_is_kept(self):
        mod, ann = self.client_for(self.mod), self.client_for(self.ann)
        self.connect(mod)
        self.connect(ann)
        mod.receive()  # ann's join
        self.say(ann, "spam")
        seq = ann.receive()["seq"]
        mod.receive()
        mod.send_and_consume("websocket.receive", text=json.dumps({"action": "delete", "seq": seq}), path="/lobby/")
        for member in (mod, ann):
            self.assertEqual(member.receive(), {"type": "deleted", "room": "lobby", "seq": seq, "by": "mod"})
        ann.send_and_consume("chat.store", {"from": "test"})  # the timed store
        self.assertFalse(Message.objects.filter(seq=seq).exists())
        joiner = WSClient()
        self.connect(joiner)
        action = ModerationAction.objects.get()
        self.assertEqual((action.moderator, action.action, action.room, action.seq), (self.mod, "delete", "lobby", seq))

    def test_a_muted_name_is_refused_with_the_time_left_and_others_speak_on(self):
        mod, ann = self.client_for(self.mod), self.client_for(self.ann)
        self.connect(mod)
        self.connect(ann)
        mod.receive()
        mod.send_and_consume("websocket.receive", path="/lobby/",
                             text=json.dumps({"action": "mute", "target": "ann", "seconds": 300}))
        self.assertEqual(ann.receive()["type"], "muted")
        mod.receive()
        self.say(ann, "let me talk")
        refused = ann.receive()
        self.assertEqual(refused["code"], "muted")
        self.assertTrue(299 <= refused["retry_after"] <= 300)
        self.assertIsNone(mod.receive())
        self.say(mod, "others speak on")
        self.assertEqual(ann.receive()["message"], "others speak on")

    def test_a_socket_that_is_not_staff_cannot_moderate(self):
        ann = self.client_for(self.ann)
        self.connect(ann)
        for frame in ({"action": "delete", "seq": 1}, {"action": "mute", "target": "mod", "seconds": 60}):
            self.say(ann, json.dumps(frame))
            self.assertEqual(ann.receive()["code"], "not_allowed")
        guest = WSClient()
        self.connect(guest)
        ann.receive()
        self.say(guest, json.dumps({"action": "delete", "seq": 1}))
        self.assertEqual(guest.receive()["code"], "not_allowed")
        self.assertFalse(ModerationAction.objects.exists())

    def test_deleting_a_message_the_room_never_had_is_an_error(self):
        mod = self.client_for(self.mod)
        self.connect(mod)
        mod.send_and_consume("websocket.receive", text=json.dumps({"action": "delete", "seq": 99}), path="/lobby/")
        self.assertEqual(mod.receive()["code"], "no_such_message")


class TestStaleSessions(IdentityTestCase):
    def test_an_account_made_inactive_loses_its_open_sockets(self):
        ann = self.client_for(self.ann)
        self.connect(ann)
        self.ann.is_active = False
        self.ann.save()
        self.assertEqual(ann.get_next_message(ann.reply_channel).content, {"close": identity.CLOSE_SIGNED_OUT})

    def test_a_connect_with_a_session_from_before_a_new_password_is_a_guest_whatever_a_worker_cached(self):
        ann = self.client_for(self.ann)
        stale = get_user_model().objects.get(pk=self.ann.pk)
        self.ann.set_password("a-new-password-2")
        self.ann.save()
        accounts._users[self.ann.pk] = (float("inf"), stale)  # as another worker still has it
        welcome = self.connect(ann)
        self.assertEqual((welcome["signed_in"], welcome["handle"].startswith("guest-")), (False, True))

    def test_a_session_made_with_the_new_password_is_signed_in_whatever_a_worker_cached(self):
        stale = get_user_model().objects.get(pk=self.ann.pk)
        self.ann.set_password("a-new-password-2")
        self.ann.save()
        ann = self.client_for(self.ann)  # the browser that changed it keeps its session
        accounts._users[self.ann.pk] = (float("inf"), stale)  # as another worker still has it
        welcome = self.connect(ann)
        self.assertEqual((welcome["signed_in"], welcome["handle"]), (True, "ann"))

    def test_a_session_key_in_the_url_is_not_a_way_in(self):
        session = self.client_for(self.ann).browser_session
        welcome = self.connect(WSClient(), "/lobby/?session_key=%s&handle=visitor" % session)
        self.assertEqual((welcome["handle"], welcome["signed_in"]), ("visitor", False))

    def test_a_username_the_chat_cannot_show_is_refused_at_connect_with_the_reason(self):
        long_name = get_user_model().objects.create_user("x" * 40, password="long-password-1")
        refusal = self.connect(self.client_for(long_name))
        self.assertEqual(refusal["code"], "bad_handle")
        self.assertIn("cannot be a name in the chat", refusal["detail"])
