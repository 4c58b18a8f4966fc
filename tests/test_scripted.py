"""The scripted delivery (channels_example.chat.scripted) on a real Redis: a frame's chat message
numbered, kept, fanned out and queued for storing in the script that orders it, with the same
frames the step-by-step path sends, and the same refusals."""
import json
import logging
import time
from datetime import datetime, timezone

import pytest

from channels_example.chat import history, metrics, moderation, ordering, protocol
from channels_example.chat.identity import Speaker
from channels_example.chat.rooms import Room
from channels_example.layers import gate
from channels_example.models import Message

pytestmark = pytest.mark.django_db

ROOM = Room("lobby")
ANN = Speaker("ann", False, False, "guest:ann")
SENDER, MEMBER = "daphne.response.test!ann", "daphne.response.test!bob"
PROCESS = "daphne.response.test!"


@pytest.fixture(params=["scripted", "step by step"])
def layer(request, redis_layer, settings):
    settings.SCRIPTED_DELIVERY = request.param == "scripted"
    chosen = type(ordering.sequencer()).__name__
    assert chosen == ("ScriptedSequencer" if request.param == "scripted" else "RedisSequencer")
    for socket in (SENDER, MEMBER):
        redis_layer.group_add(ROOM.group_name, socket)
    return redis_layer


def joined(layer, upto=0):
    """Both sockets past the join gate, as after their welcome and history: snapshots up to ``upto``."""
    for socket in (SENDER, MEMBER):
        for stream, number in ((history.STREAM, upto), ("presence", 0)):
            layer.send(socket, gate.snapshot(layer, {"text": "snapshot"}, stream, number))
    assert len(received(layer)) == 4


def received(layer):
    """Every (socket, message) waiting in the test daphne's process channel."""
    out = []
    while True:
        channel, message = layer.receive([PROCESS])
        if channel is None:
            return out
        out.append((channel, message))


def chat(text, order, socket=SENDER, speaker=ANN, received_at=None):
    message = protocol.chat_message(ROOM.name, speaker, text)
    if received_at is not None:
        message["received_at"] = received_at
    ordering.sequencer().complete(socket, order, [["room", ROOM.name, {"message": message, "sender": socket}]])
    return message


def test_a_chat_message_reaches_every_member_numbered_kept_and_queued_for_storing(layer):
    joined(layer)
    sent = chat("héllo 👋", 1)
    frames = received(layer)
    expected = protocol.message_frame(sent, 1)
    assert frames == [(SENDER, expected), (MEMBER, expected)]
    assert history.recent().snapshot(ROOM) == ([dict(sent, seq=1)], 1)
    channel, stored = layer.receive([history.STORE_CHANNEL])
    assert stored == {field: sent[field] for field in ("handle", "signed_in", "sender", "message", "ts")} | {
        "room": ROOM.name, "seq": 1}


def test_frames_completed_out_of_order_are_numbered_in_the_order_sent(layer):
    joined(layer)
    chat("second", 2)
    assert received(layer) == []
    chat("first", 1)
    texts = [json.loads(message["text"]) for socket, message in received(layer) if socket == MEMBER]
    assert [(frame["message"], frame["seq"]) for frame in texts] == [("first", 1), ("second", 2)]


def test_numbering_resumes_after_the_databases_last_message_when_redis_has_none(layer, settings):
    Message.objects.bulk_create([Message(room=ROOM.name, seq=seq, handle="ann", message="old",
                                         created=datetime.now(timezone.utc)) for seq in range(1, 42)])
    joined(layer, upto=41)
    chat("parked, then due", 1)
    assert json.loads(received(layer)[0][1]["text"])["seq"] == 42
    # Redis loses the room again, and a frame whose turn was skipped completes late.
    layer.connection(0).delete(ROOM.key("seq"))
    Message.objects.bulk_create([Message(room=ROOM.name, seq=seq, handle="ann", message="old",
                                         created=datetime.now(timezone.utc)) for seq in range(42, 51)])
    settings.ORDERING_GAP_SECONDS = -1
    chat("after a gap", 3)
    # And again before a frame whose turn was skipped completes late.
    layer.connection(0).delete(ROOM.key("seq"))
    Message.objects.bulk_create([Message(room=ROOM.name, seq=seq, handle="ann", message="old",
                                         created=datetime.now(timezone.utc)) for seq in range(51, 61)])
    chat("late", 2)
    # (The members' gates hold these a moment: 43 to 50 never come. What was queued for storing says.)
    queued = [layer.receive([history.STORE_CHANNEL])[1] for _ in range(3)]
    assert [(item["message"], item["seq"]) for item in queued] == [
        ("parked, then due", 42), ("after a gap", 51), ("late", 61)]


def test_a_muted_sender_is_told_the_seconds_left_and_nobody_else_hears_it(layer):
    joined(layer)
    moderation.mutes().mute(ROOM, "ann", time.time() + 30)
    errors = metrics.read()["errors"].get("muted", 0)
    chat("shh", 1)
    (socket, message), = received(layer)
    assert socket == SENDER
    frame = json.loads(message["text"])
    assert (frame["type"], frame["code"]) == ("error", "muted")
    assert 29 <= frame["retry_after"] <= 30 and frame["detail"] == "a moderator muted you here: %.0f s to go" % (
        frame["retry_after"])
    assert metrics.read()["errors"]["muted"] == errors + 1
    assert history.recent().snapshot(ROOM) is None  # never numbered
    chat("and now?", 1, socket=MEMBER, speaker=Speaker("bob", False, False, "guest:bob"))  # others speak on
    assert [socket for socket, _ in received(layer)] == [SENDER, MEMBER]


@pytest.mark.parametrize("scripted", [True, False])
def test_a_member_whose_channel_is_full_is_dropped_counted_and_logged(scripted, redis_url, settings, as_default_layer,
                                                                      caplog):
    from channels_example.layers import RedisChannelLayer

    settings.SCRIPTED_DELIVERY = scripted
    layer = as_default_layer(RedisChannelLayer(**dict(
        settings.REDIS_TRANSPORT, hosts=[redis_url], channel_capacity={"daphne.response*": 1})))
    for socket in (SENDER, MEMBER):
        layer.group_add(ROOM.group_name, socket)
    layer.send(MEMBER, {"text": "fills the channel"})
    for logger in ("channels_example.chat.scripted", "channels_example.layers.groups"):
        logging.getLogger(logger).addHandler(caplog.handler)
    chat("nobody hears this", 1)
    assert layer.dropped_total() == 2  # one message for the daphne, naming both
    assert ROOM.group_name in caplog.text
