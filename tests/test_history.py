"""Room numbering and recent history (channels_example.chat.history), in memory and in a real Redis."""
import json

import pytest

from channels_example.chat import history, ordering, protocol
from channels_example.chat import recent as recent_module
from channels_example.chat.identity import Speaker
from channels_example.chat.rooms import Room
from channels_example.models import Message

pytestmark = pytest.mark.django_db

LOBBY, KITCHEN = Room("lobby"), Room("kitchen")


@pytest.fixture(params=["memory", "redis", "stock"])
def recent(request):
    """The deployment's recent store: runserver's, or on Redis under the project's layer or asgi_redis's own."""
    if request.param != "memory":
        request.getfixturevalue("redis_layer" if request.param == "redis" else "stock_layer")
    return history.recent()


def append(room, message):
    """A chat message delivered to its room as the deployment delivers it (chat.sequencers); its seq."""
    ordering.sequencer().deliver_now([["room", room.name, {"message": message, "sender": None}]])
    return history.recent().snapshot(room)[1]


ANN = Speaker("ann", False, False, "guest:session")


def message(text, room="lobby"):
    return protocol.chat_message(room, ANN, text)


def test_messages_are_numbered_one_by_one_in_each_room(recent):
    assert [append(LOBBY, message(text)) for text in "abc"] == [1, 2, 3]
    assert append(KITCHEN, message("x", "kitchen")) == 1


def test_snapshot_holds_the_last_messages_oldest_first_with_their_numbers(recent, settings):
    settings.HISTORY_LENGTH = 3
    for number in range(5):
        append(LOBBY, message("m%d" % number))
    messages, upto = recent.snapshot(LOBBY)
    assert upto == 5
    assert [(item["seq"], item["message"]) for item in messages] == [(3, "m2"), (4, "m3"), (5, "m4")]
    assert messages[0] == dict(message("m2"), seq=3, ts=messages[0]["ts"])


def test_history_item_is_the_live_frame(recent):
    sent = message("你好")
    seq = append(LOBBY, sent)
    (item,), _ = recent.snapshot(LOBBY)
    assert item == json.loads(protocol.message_frame(sent, seq)["text"])


def test_an_unknown_room_has_no_snapshot(recent):
    assert recent.snapshot(Room("nowhere")) is None


def test_numbering_resumes_after_the_last_stored_message(recent):
    Message.objects.create(room="lobby", seq=41, handle="ann", message="old", created="2026-01-01T00:00Z")
    assert append(LOBBY, message("new")) == 42


def test_history_frame_falls_back_to_the_database(settings):
    settings.HISTORY_LENGTH = 2
    for seq in (1, 2, 3):
        history.store({"room": "lobby", "seq": seq, "handle": "ann", "message": str(seq), "ts": 1764000000000})
    frame = json.loads(history.history_frame(LOBBY)["text"])
    assert ([item["message"] for item in frame["messages"]], frame["upto"]) == (["2", "3"], 3)


def test_a_message_forgotten_by_a_moderator_leaves_the_recent_history(recent):
    for text in "abc":
        append(LOBBY, message(text))
    assert history.forget(LOBBY, 2)
    assert [item["seq"] for item in recent.snapshot(LOBBY)[0]] == [1, 3]
    assert not history.forget(LOBBY, 2)


def test_a_stored_message_forgotten_leaves_the_database(settings):
    history.store({"room": "lobby", "seq": 1, "handle": "ann", "message": "x", "ts": 1764000000000})
    assert history.forget(LOBBY, 1)
    assert not Message.objects.exists()


def test_a_message_deleted_before_it_was_stored_is_never_stored():
    from channels_example.models import ModerationAction

    ModerationAction.objects.create(moderator_name="mod", action="delete", room="lobby", seq=2)
    history.store(*({"room": "lobby", "seq": seq, "handle": "ann", "message": "m", "ts": 0} for seq in (1, 2, 3)))
    assert list(Message.objects.values_list("seq", flat=True).order_by("seq")) == [1, 3]


def test_a_stored_message_keeps_who_sent_it():
    stored = dict(message("hi"), room="lobby", seq=1)
    history.store(stored)
    frame = json.loads(history.history_frame(LOBBY)["text"])
    item = frame["messages"][0]
    assert (item["handle"], item["signed_in"], item["sender"]) == ("ann", False, ANN.sender)


def resumed(since):
    frame = json.loads(history.history_frame(LOBBY, since)["text"])
    return [item["seq"] for item in frame["messages"]], frame["upto"], frame["since"], frame["complete"]


def test_a_resume_gets_every_message_after_since_then_says_it_is_complete(recent):
    for number in range(10):
        append(LOBBY, message("m%d" % number))
    assert resumed(7) == ([8, 9, 10], 10, 7, True)
    assert resumed(10) == ([], 10, 10, True)
    assert resumed(0) == (list(range(1, 11)), 10, 0, True)


def test_the_recent_list_keeps_every_message_not_yet_stored(recent, settings):
    settings.HISTORY_LENGTH = 3
    for number in range(10):
        append(LOBBY, message("m%d" % number))
    # Nothing stored yet: a resume from Redis (or memory) alone has all ten.
    assert Message.objects.count() == 0
    assert resumed(0)[0] == list(range(1, 11))


def test_once_stored_the_recent_list_lets_them_go_and_a_resume_reads_the_database_too(recent, settings):
    settings.HISTORY_LENGTH = 3
    for number in range(10):
        append(LOBBY, message("m%d" % number))
    delivered = [dict(message("m%d" % (seq - 1)), room="lobby", seq=seq) for seq in range(1, 8)]
    history.stored(LOBBY, history.store(*delivered)["lobby"])
    in_list, _ = recent.snapshot(LOBBY, 0)
    assert [item["seq"] for item in in_list] == [8, 9, 10]  # the last 3, the unstored 8-10 among them
    assert resumed(2) == (list(range(3, 11)), 10, 2, True)


def test_a_client_that_missed_more_than_the_limit_gets_the_last_ones_and_complete_false(recent, settings):
    settings.RESUME_LIMIT = 4
    for number in range(10):
        append(LOBBY, message("m%d" % number))
    assert resumed(1) == ([7, 8, 9, 10], 10, 1, False)


def test_a_since_above_the_rooms_latest_gets_the_history_of_a_join_and_complete_false(recent, settings):
    settings.HISTORY_LENGTH = 2
    for number in range(5):
        append(LOBBY, message("m%d" % number))
    assert resumed(99) == ([4, 5], 5, 99, False)


def test_when_redis_lost_the_room_a_resume_comes_from_the_database(settings):
    for seq in range(1, 6):
        history.store({"room": "lobby", "seq": seq, "handle": "ann", "message": str(seq), "ts": 1764000000000})
    assert resumed(2) == ([3, 4, 5], 5, 2, True)


def test_a_resume_holds_nothing_at_or_below_since_when_messages_were_deleted(recent):
    for number in range(10):
        append(LOBBY, message("m%d" % number))
    for seq in (8, 9):
        assert history.forget(LOBBY, seq)
    assert resumed(6) == ([7, 10], 10, 6, True)


def test_a_deletion_made_while_a_batch_was_being_stored_still_removes_the_row():
    from unittest import mock

    from channels_example.chat import moderation

    real = history._deleted
    moderator = Speaker("mod", True, True, "user:1")

    def deleted_meanwhile(items):
        # The moderator acts just after the store read the deletions (its only read, after its
        # commit): the deletion's record came too late for the store, so its removal must find the row.
        found = real(items)
        moderation.apply(LOBBY, "delete", (2,), moderator, None)
        return found

    append(LOBBY, message("one"))
    append(LOBBY, message("two"))
    with mock.patch.object(history, "_deleted", deleted_meanwhile):
        history.store(*({"room": "lobby", "seq": seq, "handle": "ann", "message": "m", "ts": 0} for seq in (1, 2)))
    assert list(Message.objects.values_list("seq", flat=True)) == [1]


def test_a_message_never_stored_stops_holding_the_recent_list_open(recent, settings, monkeypatch):
    settings.HISTORY_LENGTH = 2
    monkeypatch.setattr(recent_module, "UNSTORED_MS", 0)  # every unstored message has waited too long
    for number in range(6):
        append(LOBBY, message("m%d" % number))
    assert [item["seq"] for item in recent.snapshot(LOBBY, 0)[0]] == [5, 6]
