"""The clock (channels_example.clock): the timed channels sent on time, through any channel layer."""
import logging

import pytest
from channels import DEFAULT_CHANNEL_LAYER, channel_layers

from channels_example import clock
from channels_example.chat import metrics
from channels_example.monitoring import clock_state


@pytest.fixture
def layer(as_default_layer, settings):
    from channels_example.layers import InMemoryChannelLayer

    return as_default_layer(InMemoryChannelLayer(**dict(settings.CHANNEL_LAYERS["default"]["CONFIG"])))


@pytest.fixture
def logged(caplog):
    logger = logging.getLogger("channels_example.clock")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def taken(layer, channel):
    out = []
    while True:
        _, message = layer.receive([channel])
        if message is None:
            return out
        out.append(message)


def test_each_timed_channel_is_sent_once_per_interval(layer):
    ticking = clock.Clock("test")
    ticking.tick()
    ticking.tick()
    assert taken(layer, "chat.store") == [{"clock": "test"}]
    assert taken(layer, "chat.sweep") == [{"clock": "test"}]


def test_the_next_tick_is_due_when_the_shortest_interval_is_up(layer, settings):
    settings.STORE_INTERVAL, settings.SWEEP_INTERVAL = 0.5, 10
    waited = clock.Clock("test").tick()
    assert 0.4 < waited <= 0.5


def test_a_full_channel_is_logged_once_until_a_send_gets_through(layer, logged):
    layer.capacity = 1
    layer.send("chat.sweep", {"fills": "it"})
    ticking = clock.Clock("test")
    for _ in range(3):
        ticking._due = dict.fromkeys(ticking._due, 0.0)  # every channel due again
        ticking.tick()
    assert [record.getMessage() for record in logged.records].count(
        "clock test cannot send chat.sweep (are the workers running?): ChannelFull") == 1
    taken(layer, "chat.sweep")
    ticking._due = dict.fromkeys(ticking._due, 0.0)
    ticking.tick()
    assert "clock test sends chat.sweep again" in [record.getMessage() for record in logged.records]


def test_healthz_and_status_say_when_no_clock_has_ticked_lately(layer, settings):
    assert metrics.read_clock() is None
    assert clock_state(None).startswith("no clock has ticked yet")
    clock.Clock("test").tick()
    assert metrics.read_clock() <= 1
    assert clock_state(metrics.read_clock()) == "ok"
    assert clock_state(settings.CLOCK_SILENT_SECONDS + 1).startswith("no clock has ticked for 6 s")


def test_the_clock_runs_on_the_stock_in_memory_layer_too(as_default_layer, settings):
    from asgiref.inmemory import ChannelLayer

    stock = as_default_layer(ChannelLayer())
    clock.Clock("test").tick()
    assert stock.receive(["chat.sweep"]) == ("chat.sweep", {"clock": "test"})
    assert channel_layers[DEFAULT_CHANNEL_LAYER].channel_layer is stock
