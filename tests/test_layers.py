"""The project's channel layers: drops are visible, a refused frame's socket is disconnected, joins are gated."""
import logging
import time

import pytest
from django.conf import settings as django_settings

from channels_example.layers import InMemoryChannelLayer, RedisChannelLayer, gate

STREAM, OTHER = django_settings.GATE_TRANSPORT["gate_streams"]


@pytest.fixture(params=["memory", "redis"])
def layer(request, settings):
    """Each project layer with a capacity of 1 for every channel."""
    config = dict(settings.GATE_TRANSPORT, capacity=1)
    if request.param == "redis":
        return request.getfixturevalue("as_default_layer")(
            RedisChannelLayer(hosts=[request.getfixturevalue("redis_url")], **config))
    return InMemoryChannelLayer(**config)


@pytest.fixture
def logged(caplog):
    """The project's loggers do not propagate to the root: catch what the layers log."""
    logger = logging.getLogger("channels_example.layers")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_group_send_to_a_full_channel_is_logged_and_counted(layer, logged):
    layer.group_add("chat-lobby", "daphne.response.full!a")
    layer.group_add("chat-lobby", "daphne.response.free!b")
    layer.send("daphne.response.full!a", {"text": "fills it"})
    layer.send_group("chat-lobby", {"text": "hello"})
    assert layer.dropped == 1
    assert "chat-lobby" in logged.text and "daphne.response.full!a" in logged.text
    if hasattr(layer, "dropped_total"):
        assert layer.dropped_total() == 1
    assert layer.receive(["daphne.response.free!"])[1] == {"text": "hello"}


def test_a_frame_refused_by_a_full_shared_queue_disconnects_its_socket_for_daphne(layer):
    # websocket.receive holds one frame here (capacity 1): the next socket's frame is refused,
    # daphne closes that socket with 1013 and mutes it, and the layer sends its disconnect.
    layer.send("websocket.receive", {"reply_channel": "daphne.response.x!first", "path": "/a/", "text": "x",
                                     "order": 1})
    with pytest.raises(layer.ChannelFull):
        layer.send("websocket.receive", {"reply_channel": "daphne.response.x!next", "path": "/b/", "text": "x",
                                         "order": 4})
    channel, disconnect = layer.receive(["websocket.disconnect"])
    assert (channel, disconnect["reply_channel"], disconnect["code"], disconnect["order"], disconnect["path"]) == (
        "websocket.disconnect", "daphne.response.x!next", 1013, 4, "/b/")


def test_group_message_is_written_once_per_daphne_and_reaches_each_member(redis_layer):
    for member in ("daphne.response.A!1", "daphne.response.A!2", "daphne.response.A!3", "daphne.response.B!1"):
        redis_layer.group_add("chat-lobby", member)
    redis_layer.send_group("chat-lobby", {"text": "hi"})
    assert len(redis_layer.receive_batch(["daphne.response.A!"])) == 3
    redis_layer.send_group("chat-lobby", {"text": "again"})
    got = [redis_layer.receive(["daphne.response.A!"]) for _ in range(3)]
    assert got == [("daphne.response.A!%d" % n, {"text": "again"}) for n in (1, 2, 3)]
    assert [redis_layer.receive(["daphne.response.B!"]) for _ in range(2)] == [
        ("daphne.response.B!1", {"text": "hi"}), ("daphne.response.B!1", {"text": "again"})]
    assert redis_layer.receive(["daphne.response.A!"]) == (None, None)


def test_daphne_takes_a_batch_in_one_call_and_expands_group_messages(redis_layer):
    redis_layer.group_add("chat-lobby", "daphne.response.A!1")
    redis_layer.group_add("chat-lobby", "daphne.response.A!2")
    redis_layer.send("daphne.response.A!1", {"accept": True})
    redis_layer.send_group("chat-lobby", {"text": "hi"})
    assert redis_layer.receive_batch(["daphne.response.A!"]) == [
        ("daphne.response.A!1", {"accept": True}),
        ("daphne.response.A!1", {"text": "hi"}),
        ("daphne.response.A!2", {"text": "hi"}),
    ]


def test_worker_takes_one_message_at_a_time_in_order(redis_layer):
    for number in range(3):
        redis_layer.send("websocket.receive", {"reply_channel": "daphne.response.A!1", "order": number + 1, "n": number})
    assert [redis_layer.receive(["websocket.receive"], block=True)[1]["n"] for _ in range(3)] == [0, 1, 2]
    assert redis_layer.receive(["websocket.receive"]) == (None, None)


def test_workers_take_channels_in_worker_priority_order(redis_layer):
    redis_layer.send("chat.store", {"n": "store"})
    redis_layer.send("websocket.receive", {"reply_channel": "daphne.response.A!1", "order": 1, "n": "chat"})
    redis_layer.send("websocket.connect", {"reply_channel": "daphne.response.A!2", "n": "join"})
    taken = [redis_layer.receive(["chat.store", "websocket.receive", "websocket.connect"])[1]["n"] for _ in range(3)]
    assert taken == ["join", "chat", "store"]


def chat(layer, seq):
    return gate.live(layer, {"text": "message %d" % seq}, STREAM, seq)


def history(layer, upto):
    return gate.snapshot(layer, {"text": "history up to %d" % upto}, STREAM, upto)


def welcome(layer, upto=0):
    return gate.snapshot(layer, {"text": "welcome"}, OTHER, upto)


def received(layer, process, count):
    got = [layer.receive([process]) for _ in range(count)]
    assert layer.receive([process]) == (None, None), "more than %d messages" % count
    return got


def test_a_joiner_gets_its_snapshots_first_then_each_later_message_once_in_order(layer):
    joiner = "daphne.response.A!joiner"
    layer.capacity = 100
    layer.group_add("chat-lobby", joiner)
    # Published while it joined: 2 and 3 reach it live before its history (up to 2) does.
    for seq in (3, 2):
        layer.send_group("chat-lobby", chat(layer, seq))
    layer.send(joiner, {"accept": True})
    layer.send(joiner, welcome(layer))
    layer.send(joiner, history(layer, 2))
    for seq in (2, 4):
        layer.send_group("chat-lobby", chat(layer, seq))

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
    layer.send(member, welcome(layer))
    layer.send(member, history(layer, 0))
    received(layer, "daphne.response.A!", 2)
    for socket in (joiner, member):
        layer.group_add("chat-lobby", socket)
    layer.send_group("chat-lobby", chat(layer, 1))
    assert received(layer, "daphne.response.A!", 1) == [(member, {"text": "message 1"})]
    layer.send(joiner, welcome(layer))
    layer.send(joiner, history(layer, 1))
    assert received(layer, "daphne.response.A!", 2) == [(joiner, {"text": "welcome"}),
                                                        (joiner, {"text": "history up to 1"})]


def test_events_of_the_other_stream_wait_for_both_snapshots_too(layer):
    joiner = "daphne.response.A!joiner"
    layer.capacity = 100
    layer.send(joiner, gate.live(layer, {"text": "join of bob"}, OTHER, 8))
    layer.send(joiner, welcome(layer, 7))
    layer.send(joiner, gate.live(layer, {"text": "own join"}, OTHER, 7))
    layer.send(joiner, gate.live(layer, {"text": "join of cy"}, OTHER, 9))
    layer.send(joiner, history(layer, 0))
    layer.send(joiner, gate.live(layer, {"text": "own join"}, OTHER, 7))
    assert [message["text"] for _, message in received(layer, "daphne.response.A!", 4)] == [
        "welcome", "history up to 0", "join of bob", "join of cy"]


def test_messages_held_too_long_without_snapshots_are_let_through_and_logged(layer, logged):
    joiner = "daphne.response.A!joiner"
    layer.capacity = 100
    layer.gate.max_seconds = 0
    layer.send(joiner, chat(layer, 1))
    got = [layer.receive(["daphne.response.A!"]) for _ in range(2)]
    assert (joiner, {"text": "message 1"}) in got
    assert "no snapshots came for daphne.response.A!joiner" in logged.text


def test_a_disconnected_socket_is_forgotten_and_its_late_messages_dropped(layer):
    joiner = "daphne.response.A!joiner"
    layer.capacity = 100
    layer.send(joiner, chat(layer, 1))
    assert layer.receive(["daphne.response.A!"]) == (None, None)  # held for its snapshots
    assert layer.gate.sockets() == (1, 0)
    layer.send("websocket.disconnect", {"reply_channel": joiner, "path": "/", "order": 1})
    assert layer.gate.sockets() == (0, 0)
    layer.send(joiner, chat(layer, 2))
    assert layer.receive(["daphne.response.A!"]) == (None, None)


def test_daphne_batch_passes_through_the_gate(redis_layer):
    joiner = "daphne.response.A!joiner"
    redis_layer.group_add("chat-lobby", joiner)
    redis_layer.send_group("chat-lobby", chat(redis_layer, 2))
    redis_layer.send(joiner, welcome(redis_layer))
    redis_layer.send(joiner, history(redis_layer, 1))
    redis_layer.send_group("chat-lobby", chat(redis_layer, 1))
    assert redis_layer.receive_batch(["daphne.response.A!"]) == [
        (joiner, {"text": "welcome"}), (joiner, {"text": "history up to 1"}), (joiner, {"text": "message 2"})]


def test_a_member_gets_the_rooms_messages_in_their_numbered_order(layer):
    member = "daphne.response.A!member"
    layer.capacity = 100
    layer.send(member, welcome(layer))
    layer.send(member, history(layer, 0))
    for seq in (2, 1, 3, 5, 4):
        layer.send(member, chat(layer, seq))
    assert [message["text"] for _, message in received(layer, "daphne.response.A!", 7)[2:]] == [
        "message %d" % seq for seq in range(1, 6)]


def test_a_number_that_never_comes_holds_the_rest_at_most_gap_seconds(layer, logged):
    member = "daphne.response.A!member"
    layer.capacity = 100
    layer.gate.gap_seconds = 0
    layer.send(member, welcome(layer))
    layer.send(member, history(layer, 0))
    for seq in (1, 3):
        layer.send(member, chat(layer, seq))
    got = [layer.receive(["daphne.response.A!"]) for _ in range(5)]
    assert [message["text"] for _, message in got if message][2:] == ["message 1", "message 3"]
    assert "%s 2 to 2 never came" % STREAM in logged.text


def test_a_frame_refused_at_the_outbox_limit_disconnects_its_socket_for_daphne(redis_layer):
    """daphne closes the socket with 1013 and mutes it: the layer sends its disconnect, or it
    would stay in its room for a day."""
    import queue

    redis_layer._outbox = queue.Queue()  # daphne's, with no writer thread: nothing leaves it
    redis_layer.outbox_limit = 2
    frame = {"reply_channel": "daphne.response.x!many", "path": "/", "text": "x"}
    for order in (1, 2):
        redis_layer.send("websocket.receive", dict(frame, order=order))
    with pytest.raises(redis_layer.ChannelFull):
        redis_layer.send("websocket.receive", dict(frame, order=3))
    channel, disconnect = redis_layer.receive(["websocket.disconnect"])
    assert (channel, disconnect["reply_channel"], disconnect["code"], disconnect["order"]) == (
        "websocket.disconnect", "daphne.response.x!many", 1013, 3)


def test_daphnes_connects_are_written_by_the_outbox_and_refused_later_when_they_cannot_be(redis_layer):
    """The reactor does not wait on Redis for a connect; one that cannot be written comes back
    through connect_refused (daphne's interface then answers 503)."""
    import queue
    import threading

    refused, told = [], threading.Event()
    redis_layer.connect_refused = lambda socket: (refused.append(socket), told.set())
    redis_layer._outbox = queue.Queue()
    threading.Thread(target=redis_layer._write_outbox, daemon=True).start()
    redis_layer.channel_capacity = [(pattern, 1 if pattern.match("websocket.connect") else capacity)
                                    for pattern, capacity in redis_layer.channel_capacity]
    connect = {"path": "/lobby/", "headers": [], "order": 0}
    redis_layer.send("websocket.connect", dict(connect, reply_channel="daphne.response.x!first"))
    assert redis_layer.receive(["websocket.connect"], block=True)[1]["reply_channel"] == "daphne.response.x!first"
    # websocket.connect holds one here: the third is refused by Redis, after send returned.
    for socket in ("daphne.response.x!second", "daphne.response.x!third"):
        redis_layer.send("websocket.connect", dict(connect, reply_channel=socket))
    assert told.wait(5) and refused == ["daphne.response.x!third"]
    # While Redis is known to be down, daphne is told at once.
    redis_layer._shards_down = {0}
    with pytest.raises(redis_layer.ChannelFull):
        redis_layer.send("websocket.connect", dict(connect, reply_channel="daphne.response.x!fourth"))


def test_a_sockets_messages_go_to_the_shard_of_their_shard_key(redis_url, settings):
    layer = RedisChannelLayer(**dict(settings.REDIS_TRANSPORT, hosts=[redis_url, redis_url + "1"]))
    for key in ("chat-lobby", "chat-other"):
        assert layer.frame_shard({"path": "/x/", "shard_key": key}) == layer.consistent_hash(key)
    assert layer.frame_shard({"path": "/x/"}) is None  # no key: any shard


def test_a_script_sends_with_the_layers_lua_functions_as_the_layer_itself_would(redis_layer):
    redis_layer.group_add("chat-lobby", "daphne.response.one!a")
    redis_layer.group_add("chat-lobby", "daphne.response.one!b")
    redis_layer.group_add("chat-lobby", "daphne.response.two!c")
    source, config = redis_layer.lua_sends()
    script = source + """
        asgi_setup(ARGV[1])
        local dropped = asgi_group_send('chat-lobby', {text = 'to all'})
        asgi_send('daphne.response.two!c', {text = 'to c', n = 7})
        asgi_send('chat.history', {seq = 1, room = 'lobby', signed_in = false})
        return dropped
    """
    assert redis_layer.connection(0).eval(script, 0, config) == 0
    assert redis_layer.receive_batch(["daphne.response.one!"]) == [
        ("daphne.response.one!a", {"text": "to all"}), ("daphne.response.one!b", {"text": "to all"})]
    assert redis_layer.receive_batch(["daphne.response.two!"]) == [
        ("daphne.response.two!c", {"text": "to all"}), ("daphne.response.two!c", {"text": "to c", "n": 7})]
    assert redis_layer.receive(["chat.history"]) == ("chat.history", {"seq": 1, "room": "lobby", "signed_in": False})


def test_the_lua_sends_exist_only_where_one_script_reaches_every_key(redis_url, settings):
    config = dict(settings.REDIS_TRANSPORT, hosts=[redis_url])
    assert RedisChannelLayer(**config).lua_sends() is not None
    assert RedisChannelLayer(**dict(config, hosts=[redis_url, redis_url.replace("/0", "/1")])).lua_sends() is None
    assert RedisChannelLayer(**dict(config, symmetric_encryption_keys=["secret"])).lua_sends() is None
    assert RedisChannelLayer(**dict(config, channel_capacity={"daphne.[rs]*": 10})).lua_sends() is None


def test_the_layer_packs_asgi_redis_bytes_with_a_compiled_packer_and_redis_py_parses_with_hiredis(redis_layer):
    import msgpack
    import redis.connection

    messages = [{"text": "héllo 👋", "order": 3, "reply_channel": "daphne.response.a!b", "bytes": None},
                {"bytes": b"\x00\xff", "path": "/", "query_string": b"since=3", "client": ["127.0.0.1", 5]},
                {"__gate__": {"stream": "history", "seq": 2 ** 40}, "received_at": 1.5, "ok": True}]
    for message in messages:
        packed = redis_layer.serialize(message)
        assert packed == msgpack.packb(message, use_bin_type=True)  # asgi_redis's own bytes
        assert redis_layer.deserialize(packed) == msgpack.unpackb(packed, encoding="utf8") == message
    assert redis.connection.DefaultParser is redis.connection.HiredisParser
    assert redis_layer.connection(0).ping()


def test_a_worker_goes_on_taking_messages_while_redis_is_full(redis_url, settings):
    layer = RedisChannelLayer(hosts=[redis_url], **settings.REDIS_TRANSPORT)
    layer.send("chat.history", {"seq": 1})
    client = layer.connection(0)
    limit = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory", 1)  # every write refused: OOM
    try:
        assert layer.receive(["chat.history"]) == ("chat.history", {"seq": 1})  # taking frees memory
    finally:
        client.config_set("maxmemory", limit)
