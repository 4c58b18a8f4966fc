"""The project's channel layers: drops are visible, and a flooding socket alone is refused."""
import logging

import pytest
import redis

from channels_example import layers, ordering, protocol


@pytest.fixture(params=["memory", "redis"])
def layer(request, settings, monkeypatch):
    monkeypatch.setattr(ordering, "_sequencer", None)
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        settings.REDIS_HOSTS = [url]
        chosen = layers.RedisChannelLayer(hosts=[url], capacity=1, socket_backlog=10)
        chosen.redis = redis.StrictRedis.from_url(url)
    else:
        settings.REDIS_HOSTS = []
        chosen = layers.InMemoryChannelLayer(capacity=1, socket_backlog=10)
        chosen.redis = None
    yield chosen
    monkeypatch.setattr(ordering, "_sequencer", None)


def test_group_send_to_a_full_channel_is_logged_and_counted(layer, caplog):
    layer.group_add("chat-lobby", "daphne.response.full!a")
    layer.group_add("chat-lobby", "daphne.response.free!b")
    layer.send("daphne.response.full!a", {"text": "fills it"})
    logger = logging.getLogger("channels_example.layers")
    logger.addHandler(caplog.handler)  # the project's loggers do not propagate to the root
    try:
        layer.send_group("chat-lobby", {"text": "hello"})
    finally:
        logger.removeHandler(caplog.handler)
    assert layer.dropped == 1
    assert "chat-lobby" in caplog.text and "daphne.response.full!a" in caplog.text
    if layer.redis is not None:
        assert int(layer.redis.get(layers.DROPPED_KEY)) == 1
    assert layer.receive(["daphne.response.free!"])[1] == {"text": "hello"}


def flood(layer, socket, orders):
    """Send ``socket``'s frames with these orders, as daphne would; the last must be refused."""
    frame = {"reply_channel": socket, "path": "/", "text": "x"}
    layer.capacity = 100
    for order in orders[:-1]:
        layer.send("websocket.receive", dict(frame, order=order))
    with pytest.raises(layer.ChannelFull):
        layer.send("websocket.receive", dict(frame, order=orders[-1]))


def test_a_socket_with_socket_backlog_frames_unhandled_is_refused(layer):
    flood(layer, "daphne.response.x!flood", list(range(1, 12)))
    # Another socket still gets through: the shared queue is not full.
    layer.send("websocket.receive", {"reply_channel": "daphne.response.x!calm", "path": "/", "text": "x", "order": 1})


def test_a_refused_socket_is_disconnected_for_daphne_which_mutes_it(layer):
    # daphne sends no websocket.disconnect for a socket it closed with 1013; the layer does.
    flood(layer, "daphne.response.x!flood", list(range(1, 12)))
    channel, disconnect = layer.receive(["websocket.disconnect"])
    assert channel == "websocket.disconnect"
    assert (disconnect["reply_channel"], disconnect["code"], disconnect["order"]) == ("daphne.response.x!flood", 1013, 11)


def test_the_backlog_counts_only_frames_not_yet_handled(layer):
    ordering.sequencer().complete("daphne.response.x!busy", 1, [])
    ordering.sequencer().complete("daphne.response.x!busy", 2, [])
    flood(layer, "daphne.response.x!busy", list(range(3, 14)))


@pytest.fixture
def redis_layer(redis_url, settings):
    settings.REDIS_HOSTS = [redis_url]
    return layers.RedisChannelLayer(hosts=[redis_url], capacity=100)


def test_group_message_is_written_once_per_daphne_and_reaches_each_member(redis_layer):
    for member in ("daphne.response.A!1", "daphne.response.A!2", "daphne.response.A!3", "daphne.response.B!1"):
        redis_layer.group_add("chat-lobby", member)
    redis_layer.send_group("chat-lobby", {"text": "hi"})
    assert redis_layer.connection(0).llen(redis_layer.prefix + "daphne.response.A!") == 1
    got = [redis_layer.receive(["daphne.response.A!"]) for _ in range(3)]
    assert got == [("daphne.response.A!%d" % n, {"text": "hi"}) for n in (1, 2, 3)]
    assert redis_layer.receive(["daphne.response.B!"]) == ("daphne.response.B!1", {"text": "hi"})
    assert redis_layer.receive(["daphne.response.A!"]) == (None, None)


def test_daphne_takes_a_batch_in_one_call_and_expands_group_messages(redis_layer):
    redis_layer.group_add("chat-lobby", "daphne.response.A!1")
    redis_layer.group_add("chat-lobby", "daphne.response.A!2")
    redis_layer.send("daphne.response.A!1", {"accept": True})
    redis_layer.send_group("chat-lobby", {"text": "hi"})
    batch = redis_layer._receive_batch(["daphne.response.A!"])
    assert batch == [
        ("daphne.response.A!1", {"accept": True}),
        ("daphne.response.A!1", {"text": "hi"}),
        ("daphne.response.A!2", {"text": "hi"}),
    ]


def test_worker_takes_one_message_at_a_time_in_order(redis_layer):
    for number in range(3):
        redis_layer.send("websocket.receive", {"reply_channel": "daphne.response.A!1", "order": number + 1, "n": number})
    assert [redis_layer.receive(["websocket.receive"], block=True)[1]["n"] for _ in range(3)] == [0, 1, 2]
    assert redis_layer.receive(["websocket.receive"]) == (None, None)


def chat(seq):
    return {"text": "message %d" % seq, layers.SEQ_KEY: seq}


def history(upto):
    return {"text": "history up to %d" % upto, layers.HISTORY_UPTO_KEY: upto}


def welcome(upto=0):
    return {"text": "welcome", layers.PRESENCE_UPTO_KEY: upto}


def received(layer, process, count):
    got = [layer.receive([process]) for _ in range(count)]
    assert layer.receive([process]) == (None, None), "more than %d messages" % count
    return got


def test_a_joiner_gets_history_first_then_each_later_message_once_in_order(layer):
    joiner = "daphne.response.A!joiner"
    layer.capacity = 100
    layer.group_add("chat-lobby", joiner)
    # Published while it joined: 2 and 3 reach it live before its history (up to 2) does.
    for seq in (3, 2):
        layer.send_group("chat-lobby", chat(seq))
    layer.send(joiner, {"accept": True})
    layer.send(joiner, welcome())
    layer.send(joiner, history(2))
    for seq in (2, 4):
        layer.send_group("chat-lobby", chat(seq))

    assert received(layer, "daphne.response.A!", 5) == [
        (joiner, {"accept": True}),
        (joiner, {"text": "welcome"}),
        (joiner, {"text": "history up to 2"}),
        (joiner, {"text": "message 3"}),
        (joiner, {"text": "message 4"}),
    ]


def test_the_gate_is_per_socket(layer):
    joiner, member = "daphne.response.A!joiner", "daphne.response.A!member"
    layer.capacity = 100
    layer.send(member, welcome())
    layer.send(member, history(0))
    received(layer, "daphne.response.A!", 2)
    for socket in (joiner, member):
        layer.group_add("chat-lobby", socket)
    layer.send_group("chat-lobby", chat(1))
    assert received(layer, "daphne.response.A!", 1) == [(member, {"text": "message 1"})]
    layer.send(joiner, welcome())
    layer.send(joiner, history(1))
    assert received(layer, "daphne.response.A!", 2) == [(joiner, {"text": "welcome"}),
                                                        (joiner, {"text": "history up to 1"})]


def test_presence_events_wait_for_welcome_and_history_too(layer):
    joiner = "daphne.response.A!joiner"
    layer.capacity = 100
    layer.send(joiner, {"text": "join of bob", layers.PRESENCE_SEQ_KEY: 8})
    layer.send(joiner, welcome(7))
    layer.send(joiner, {"text": "own join", layers.PRESENCE_SEQ_KEY: 7})
    layer.send(joiner, {"text": "join of cy", layers.PRESENCE_SEQ_KEY: 9})
    layer.send(joiner, history(0))
    layer.send(joiner, {"text": "own join", layers.PRESENCE_SEQ_KEY: 7})
    assert [message["text"] for _, message in received(layer, "daphne.response.A!", 4)] == [
        "welcome", "history up to 0", "join of bob", "join of cy"]


def test_messages_held_too_long_without_history_are_let_through_and_logged(layer, caplog):
    joiner = "daphne.response.A!joiner"
    layer.capacity = 100
    layer.gate.max_seconds = 0
    layer.send(joiner, chat(1))
    logger = logging.getLogger("channels_example.layers")
    logger.addHandler(caplog.handler)
    try:
        got = [layer.receive(["daphne.response.A!"]) for _ in range(2)]
    finally:
        logger.removeHandler(caplog.handler)
    assert (joiner, {"text": "message 1"}) in got
    assert "no welcome and history came for daphne.response.A!joiner" in caplog.text


def test_a_disconnected_socket_is_forgotten(layer):
    joiner = "daphne.response.A!joiner"
    layer.capacity = 100
    layer.send(joiner, chat(1))
    layer.send("websocket.disconnect", {"reply_channel": joiner, "path": "/", "order": 1})
    assert layer.gate._joining == {} and layer.gate._open == {}
    layer.send(joiner, chat(2))
    assert layer.receive(["daphne.response.A!"]) == (None, None)


def test_daphne_batch_passes_through_the_gate(redis_layer):
    joiner = "daphne.response.A!joiner"
    redis_layer.group_add("chat-lobby", joiner)
    redis_layer.send_group("chat-lobby", chat(2))
    redis_layer.send(joiner, welcome())
    redis_layer.send(joiner, history(1))
    redis_layer.send_group("chat-lobby", chat(1))
    batch = redis_layer._receive_batch(["daphne.response.A!"])
    assert batch == [(joiner, {"text": "welcome"}), (joiner, {"text": "history up to 1"}),
                     (joiner, {"text": "message 2"})]


def test_a_member_gets_the_rooms_messages_in_their_numbered_order(layer):
    member = "daphne.response.A!member"
    layer.capacity = 100
    layer.send(member, welcome())
    layer.send(member, history(0))
    for seq in (2, 1, 3, 5, 4):
        layer.send(member, chat(seq))
    assert [message["text"] for _, message in received(layer, "daphne.response.A!", 7)[2:]] == [
        "message %d" % seq for seq in range(1, 6)]


def test_a_number_that_never_comes_holds_the_rest_at_most_gap_seconds(layer):
    member = "daphne.response.A!member"
    layer.capacity = 100
    layer.gate.gap_seconds = 0
    layer.send(member, welcome())
    layer.send(member, history(0))
    for seq in (1, 3):
        layer.send(member, chat(seq))
    got = [layer.receive(["daphne.response.A!"]) for _ in range(5)]
    assert [message["text"] for _, message in got if message] [2:] == ["message 1", "message 3"]


def test_an_over_long_frame_reaches_the_worker_as_its_length_only(layer):
    body = "x" * (protocol.MAX_FRAME_LENGTH + 1)
    layer.send("websocket.receive", {"reply_channel": "daphne.response.x!big", "path": "/", "order": 1, "text": body})
    _, frame = layer.receive(["websocket.receive"])
    assert "text" not in frame and frame[protocol.OVERSIZED] == len(body)
    with pytest.raises(protocol.ProtocolError) as invalid:
        protocol.parse_chat(frame)
    assert invalid.value.code == "message_too_long"
