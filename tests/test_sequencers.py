"""One contract for the sequencers behind @in_order (channels_example.chat.sequencers): a socket's
frames delivered in order, and a chat message muted, numbered, kept, sent and queued for storing,
the same on each deployment:

* memory: runserver's LocalSequencer, on the in-memory layer;
* redis: RedisSequencer on the project's layer, its sends made inside the delivery script;
* stock: RedisSequencer on asgi_redis's own layer, unchanged, its sends made by the worker.

What each delivered is read where daphne would read it: a test daphne's process channel.
"""
import json
import random
import threading
import time
from datetime import datetime, timezone

import pytest

from channels_example.chat import history, metrics, moderation, ordering, protocol, sequencers
from channels_example.chat.identity import Speaker
from channels_example.chat.rooms import Room
from channels_example.layers import gate
from channels_example.models import Message

pytestmark = pytest.mark.django_db

ROOM = Room("lobby")
ANN = Speaker("ann", False, False, "guest:ann")
SENDER, MEMBER = "daphne.response.test!ann", "daphne.response.test!bob"
PROCESS = "daphne.response.test!"
KINDS = {"memory": "LocalSequencer", "redis": "RedisSequencer", "stock": "RedisSequencer"}


@pytest.fixture(params=["memory", "redis", "stock"])
def deployment(request):
    """The default layer of one deployment, the room's Group holding both sockets, each past the join
    gate (where the layer has one) as after its welcome and history."""
    layer = request.getfixturevalue({"memory": "memory_layer", "redis": "redis_layer", "stock": "stock_layer"}[
        request.param])
    assert type(ordering.sequencer()).__name__ == KINDS[request.param]
    if request.param == "redis":
        assert ordering.sequencer().sends_in_script
    join(layer, ROOM)
    return layer


def join(layer, room, upto=0):
    """Both sockets in the room's Group and past the join gate, their history holding ``upto``."""
    for socket in (SENDER, MEMBER):
        layer.group_add(room.group_name, socket)
        for stream, number in ((history.STREAM, upto), ("presence", 0)):
            layer.send(socket, gate.snapshot(layer, {"text": "snapshot"}, stream, number))
    assert len(received(layer)) == 4


def received(layer):
    """Every (socket, message) waiting in the test daphne's process channel, in order."""
    out = []
    while True:
        channel, message = layer.receive([PROCESS])
        if channel is None:
            return out
        out.append((channel, message))


def frames(layer, socket=MEMBER):
    return [json.loads(message["text"]) for channel, message in received(layer) if channel == socket]


def frame(order):
    """A frame whose one send is a message to the room's Group."""
    return [["group", ROOM.group_name, {"text": json.dumps({"n": order})}]]


def numbers(layer):
    return [item["n"] for item in frames(layer)]


def chat(text, order, socket=SENDER, speaker=ANN, received_at=None, room=ROOM):
    message = protocol.chat_message(room.name, speaker, text)
    if received_at is not None:
        message["received_at"] = received_at
    ordering.sequencer().complete(socket, order, [["room", room.name, {"message": message, "sender": socket}]])
    return message


# --------------------------------------------------------------------------- a socket's order

def test_frames_completed_out_of_order_are_delivered_in_order(deployment):
    for order in (2, 3, 1, 5, 4):
        ordering.sequencer().complete(SENDER, order, frame(order))
    assert numbers(deployment) == [1, 2, 3, 4, 5]


def test_an_early_frame_is_parked_and_its_worker_returns_at_once(deployment):
    ordering.sequencer().complete(SENDER, 2, frame(2))
    assert numbers(deployment) == []
    assert ordering.sequencer().next_order(SENDER) == 1


def test_sockets_are_independent(deployment):
    ordering.sequencer().complete(SENDER, 2, frame(2))
    ordering.sequencer().complete(MEMBER, 1, frame(1))
    assert numbers(deployment) == [1]


def test_a_frame_with_nothing_to_send_still_takes_its_turn(deployment):
    ordering.sequencer().complete(SENDER, 2, frame(2))
    ordering.sequencer().complete(SENDER, 1, [])
    assert numbers(deployment) == [2]
    assert ordering.sequencer().next_order(SENDER) == 3


def test_a_lost_frame_holds_later_ones_until_the_gap_is_stale(deployment, settings):
    ordering.sequencer().complete(SENDER, 2, frame(2))
    ordering.sequencer().complete(SENDER, 3, frame(3))
    assert numbers(deployment) == []
    settings.ORDERING_GAP_SECONDS = -1  # every gap is now older than the limit
    ordering.sequencer().complete(SENDER, 4, frame(4))
    assert numbers(deployment) == [2, 3, 4]


def test_a_frame_completing_after_its_turn_was_skipped_is_delivered_not_lost(deployment, settings):
    settings.ORDERING_GAP_SECONDS = -1
    ordering.sequencer().complete(SENDER, 2, frame(2))
    ordering.sequencer().complete(SENDER, 1, frame(1))
    assert numbers(deployment) == [2, 1]


def test_a_disconnect_held_behind_a_lost_frame_is_delivered_by_the_sweep_once_the_gap_is_stale(deployment, settings):
    # Long enough that a loaded machine's pause between these steps stays inside it.
    settings.ORDERING_GAP_SECONDS = 0.5
    ordering.sequencer().complete(SENDER, 2, frame(2))
    ordering.sequencer().complete(SENDER, 3, frame(3), final=True)  # its worker returns at once
    ordering.sweep()
    assert numbers(deployment) == [], "swept before the gap was stale"
    time.sleep(0.6)  # the gap is a span of time: nothing to wait on but the clock
    ordering.sweep()
    assert numbers(deployment) == [2, 3]
    assert ordering.sequencer().next_order(SENDER) == 4


def test_a_disconnect_due_at_once_is_delivered_by_its_own_worker(deployment):
    ordering.sequencer().complete(SENDER, 1, frame(1))
    ordering.sequencer().complete(SENDER, 2, frame(2), final=True)
    assert numbers(deployment) == [1, 2]
    ordering.sweep()  # nothing left for the sweep
    assert numbers(deployment) == []


def test_a_connects_sends_are_made_at_once_in_no_turn(deployment):
    ordering.sequencer().deliver_now([["channel", SENDER, {"text": '{"n": 0}'}]] + frame(1))
    assert [item["n"] for item in frames(deployment, SENDER)] == [0, 1]
    assert ordering.sequencer().next_order(SENDER) == 1


def complete_shuffled(count, make):
    """Four threads, as four workers, completing a socket's frames 1..count in a shuffled order."""
    orders = list(range(1, count + 1))
    random.Random(7).shuffle(orders)
    threads = [threading.Thread(target=lambda chunk=chunk: [make(n) for n in chunk])
               for chunk in (orders[start::4] for start in range(4))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_many_threads_completing_shuffled_frames_deliver_each_once_and_in_order_where_one_script_sends(deployment):
    complete_shuffled(200, lambda n: ordering.sequencer().complete(SENDER, n, frame(n)))
    delivered = numbers(deployment)
    if getattr(ordering.sequencer(), "sends_in_script", True):  # runserver, or the layer's sends in the script
        assert delivered == list(range(1, 201))
    else:  # the workers make the sends when the script returns: two of them may cross on their way
        assert sorted(delivered) == list(range(1, 201))


def test_many_threads_completing_shuffled_chat_frames_number_them_in_the_order_sent(deployment):
    complete_shuffled(100, lambda n: chat(str(n), n))
    numbered = sorted((item["seq"], int(item["message"])) for item in frames(deployment))
    assert numbered == [(n, n) for n in range(1, 101)]


# --------------------------------------------------------------------------- a chat message

def test_a_chat_message_reaches_every_member_numbered_kept_and_queued_for_storing(deployment):
    sent = chat("héllo 👋", 1)
    expected = json.loads(protocol.message_frame(sent, 1)["text"])
    assert [(socket, json.loads(message["text"])) for socket, message in received(deployment)] == [
        (SENDER, expected), (MEMBER, expected)]
    assert history.recent().snapshot(ROOM) == ([dict(sent, seq=1)], 1)
    assert history.recent().take(10) == [
        {field: sent[field] for field in ("handle", "signed_in", "sender", "message", "ts")} | {"room": ROOM.name,
                                                                                              "seq": 1}]


def test_frames_completed_out_of_order_are_numbered_in_the_order_sent(deployment):
    chat("second", 2)
    assert received(deployment) == []
    chat("first", 1)
    assert [(item["message"], item["seq"]) for item in frames(deployment)] == [("first", 1), ("second", 2)]


def test_a_muted_sender_is_told_the_seconds_left_and_nobody_else_hears_it(deployment):
    moderation.mutes().mute(ROOM, "ann", time.time() + 30)
    errors = metrics.read()["errors"].get("muted", 0)
    chat("shh", 1)
    (socket, message), = received(deployment)
    refused = json.loads(message["text"])
    assert socket == SENDER and (refused["type"], refused["code"]) == ("error", "muted")
    assert 29 <= refused["retry_after"] <= 30
    assert refused["detail"] == "a moderator muted you here: %.0f s to go" % refused["retry_after"]
    assert metrics.read()["errors"]["muted"] == errors + 1
    assert history.recent().snapshot(ROOM) is None  # never numbered
    chat("and now?", 1, socket=MEMBER, speaker=Speaker("bob", False, False, "guest:bob"))  # others speak on
    assert [socket for socket, _ in received(deployment)] == [SENDER, MEMBER]


def test_numbering_resumes_after_the_databases_last_message_when_the_store_has_none(deployment, settings):
    kitchen = Room("kitchen")
    Message.objects.bulk_create([Message(room=kitchen.name, seq=seq, handle="ann", message="old",
                                         created=datetime.now(timezone.utc)) for seq in range(1, 42)])
    join(deployment, kitchen, upto=41)
    chat("parked, then due", 2, room=kitchen)
    chat("first", 1, room=kitchen)
    assert [item["seq"] for item in frames(deployment)] == [42, 43]


def test_the_delivery_counts_each_message_and_its_latency(deployment):
    before = metrics.read()
    chat("timed", 1, received_at=time.time() - 0.003)
    after = metrics.read()
    assert after["messages"] == before["messages"] + 1
    assert after["latency"].get("0.005", 0) == before["latency"].get("0.005", 0) + 1


# --------------------------------------------------------------------------- Redis only

def test_a_sockets_state_in_redis_always_expires(redis_layer):
    ordering.sequencer().complete("socket!once", 1, [])
    key = sequencers.KEY_PREFIX + "socket!once"
    assert redis_layer.connection(0).ttl(key) > 0


@pytest.mark.parametrize("deployment", ["redis", "stock"], indirect=True)
def test_a_room_redis_lost_is_numbered_from_the_database_again_for_a_parked_and_a_late_frame(deployment, settings):
    chat("one", 1)
    deployment.connection(0).delete(ROOM.key("seq"))
    Message.objects.bulk_create([Message(room=ROOM.name, seq=seq, handle="ann", message="old",
                                         created=datetime.now(timezone.utc)) for seq in range(1, 11)])
    settings.ORDERING_GAP_SECONDS = -1
    chat("after a gap", 3)
    deployment.connection(0).delete(ROOM.key("seq"))
    Message.objects.bulk_create([Message(room=ROOM.name, seq=seq, handle="ann", message="old",
                                         created=datetime.now(timezone.utc)) for seq in range(11, 21)])
    chat("late", 2)
    # (The members' gates hold these a moment: 2 to 10 never come. What was queued for storing says.)
    assert [(item["message"], item["seq"]) for item in history.recent().take(10)] == [
        ("one", 1), ("after a gap", 11), ("late", 21)]
