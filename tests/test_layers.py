"""The project's channel layers: drops are visible, and a flooding socket alone is refused."""
import logging

import pytest
import redis

from channels_example import layers, ordering


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


def test_a_socket_with_socket_backlog_frames_unhandled_is_refused(layer):
    frame = {"reply_channel": "daphne.response.x!flood", "path": "/", "text": "x"}
    layer.capacity = 100
    for order in range(1, 11):
        layer.send("websocket.receive", dict(frame, order=order))
    with pytest.raises(layer.ChannelFull):
        layer.send("websocket.receive", dict(frame, order=11))
    # Another socket still gets through: the shared queue is not full.
    layer.send("websocket.receive", dict(frame, reply_channel="daphne.response.x!calm", order=1))


def test_the_backlog_counts_only_frames_not_yet_handled(layer):
    ordering.sequencer().complete("daphne.response.x!busy", 1, [])
    ordering.sequencer().complete("daphne.response.x!busy", 2, [])
    layer.capacity = 100
    frame = {"reply_channel": "daphne.response.x!busy", "path": "/", "text": "x"}
    for order in range(3, 13):
        layer.send("websocket.receive", dict(frame, order=order))
    with pytest.raises(layer.ChannelFull):
        layer.send("websocket.receive", dict(frame, order=13))
