"""The per-socket sequencer behind @in_order, in memory and on a real Redis."""
import random
import threading

import time

import pytest

from channels_example.chat import ordering, sequencers


SEQUENCERS = {"memory": "LocalSequencer", "redis": "RedisSequencer", "scripted": "ScriptedSequencer"}
MEMBER = "daphne.response.test!member"


@pytest.fixture(params=["memory", "redis", "scripted"])
def sequencer(request, monkeypatch, settings):
    """The deployment's sequencer: in memory (runserver), in Redis over the project's layer step by
    step, or in Redis doing the sends in its script (where what it sent is read from the layer)."""
    delivered = []
    monkeypatch.setattr(sequencers, "deliver", lambda sends, socket=None: delivered.extend(sends))
    if request.param != "memory":
        settings.SCRIPTED_DELIVERY = request.param == "scripted"
        layer = request.getfixturevalue("redis_layer")
    chosen = ordering.sequencer()
    assert type(chosen).__name__ == SEQUENCERS[request.param]
    if request.param == "scripted":
        layer.group_add("chat-lobby", MEMBER)

        def read():
            while True:
                channel, content = layer.receive([MEMBER.split("!")[0] + "!"])
                if channel is None:
                    return delivered
                assert channel == MEMBER
                delivered.append(["group", "chat-lobby", content])

        chosen.delivered = read
    else:
        chosen.delivered = lambda: delivered
    return chosen


@pytest.fixture(params=["memory", "redis"])
def leased(request, settings):
    """A sequencer whose workers take turns by a lease (the scripted one needs none: a script runs alone)."""
    if request.param == "redis":
        settings.SCRIPTED_DELIVERY = False
        request.getfixturevalue("redis_layer")
    return ordering.sequencer()


def frame(order):
    return [["group", "chat-lobby", {"text": str(order)}]]


def texts(sequencer):
    return [int(content["text"]) for _, _, content in sequencer.delivered()]


def test_frames_completed_out_of_order_are_delivered_in_order(sequencer):
    for order in (2, 3, 1, 5, 4):
        sequencer.complete("socket!a", order, frame(order))
    assert texts(sequencer) == [1, 2, 3, 4, 5]


def test_an_early_frame_is_parked_and_its_worker_returns_at_once(sequencer):
    sequencer.complete("socket!a", 2, frame(2))
    assert texts(sequencer) == []
    assert sequencer.next_order("socket!a") == 1


def test_sockets_are_independent(sequencer):
    sequencer.complete("socket!a", 2, frame(2))
    sequencer.complete("socket!b", 1, frame(1))
    assert texts(sequencer) == [1]


def test_a_frame_with_nothing_to_send_still_takes_its_turn(sequencer):
    sequencer.complete("socket!a", 2, frame(2))
    sequencer.complete("socket!a", 1, [])
    assert texts(sequencer) == [2]


def test_a_lost_frame_holds_later_ones_until_the_gap_is_stale(sequencer, settings):
    sequencer.complete("socket!a", 2, frame(2))
    sequencer.complete("socket!a", 3, frame(3))
    assert texts(sequencer) == []
    settings.ORDERING_GAP_SECONDS = -1  # every gap is now older than the limit
    sequencer.complete("socket!a", 4, frame(4))
    assert texts(sequencer) == [2, 3, 4]


def test_a_frame_completing_after_its_turn_was_skipped_is_delivered_not_lost(sequencer, settings):
    settings.ORDERING_GAP_SECONDS = -1
    sequencer.complete("socket!a", 2, frame(2))
    sequencer.complete("socket!a", 1, frame(1))
    assert texts(sequencer) == [2, 1]


def test_a_disconnect_held_behind_a_lost_frame_is_delivered_by_the_sweep_once_the_gap_is_stale(sequencer, settings):
    # Long enough that a loaded machine's pause between these steps stays inside it (at 50 ms,
    # one CI run saw the gap go stale before the final frame was parked).
    settings.ORDERING_GAP_SECONDS = 0.5
    sequencer.complete("socket!a", 2, frame(2))
    sequencer.complete("socket!a", 3, frame(3), final=True)  # its worker returns at once
    assert texts(sequencer) == []
    ordering.sweep()
    assert texts(sequencer) == [], "swept before the gap was stale"
    time.sleep(0.6)  # the gap is a span of time: nothing to wait on but the clock
    ordering.sweep()
    assert texts(sequencer) == [2, 3]
    assert sequencer.next_order("socket!a") == 4 and sequencer.closing_due() == []


def test_a_disconnect_due_at_once_is_delivered_by_its_own_worker(sequencer):
    sequencer.complete("socket!a", 1, frame(1))
    sequencer.complete("socket!a", 2, frame(2), final=True)
    assert texts(sequencer) == [1, 2] and sequencer.finished("socket!a")


def test_while_another_worker_holds_the_lease_frames_are_parked_for_it(leased):
    assert leased.claim("socket!a", 1, '["one"]', "worker-a", False) == ['["one"]']
    assert leased.claim("socket!a", 2, '["two"]', "worker-b", False) == []
    assert leased.release("socket!a", "worker-a") == ['["two"]']
    assert leased.release("socket!a", "worker-a") == []


def test_many_threads_completing_shuffled_frames_deliver_in_order(sequencer):
    orders = list(range(1, 1001))
    random.Random(7).shuffle(orders)
    chunks = [orders[start::8] for start in range(8)]
    threads = [
        threading.Thread(target=lambda chunk=chunk: [sequencer.complete("socket!a", n, frame(n)) for n in chunk])
        for chunk in chunks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert texts(sequencer) == list(range(1, 1001))


def test_a_sockets_state_in_redis_always_expires(redis_layer):
    ordering.sequencer().complete("socket!once", 1, [])
    key = sequencers.KEY_PREFIX + "socket!once"
    assert redis_layer.connection(redis_layer.consistent_hash(key)).ttl(key) > 0
