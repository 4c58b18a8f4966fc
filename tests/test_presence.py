"""Room members (channels_example.presence), in memory and in a real Redis, and the sweep of dead daphnes."""
import json
import time

import pytest
from channels import DEFAULT_CHANNEL_LAYER, Group, channel_layers

from channels_example import history, presence


@pytest.fixture(params=["memory", "redis"])
def members(request, settings):
    settings.REDIS_HOSTS = [request.getfixturevalue("redis_url")] if request.param == "redis" else []
    return presence.members()


def test_join_returns_the_count_a_change_number_and_everyones_handles(members):
    assert members.join("lobby", "daphne.response.A!1", "ann") == (1, 1, ["ann"])
    count, number, handles = members.join("lobby", "daphne.response.A!2", "bob")
    assert (count, number, sorted(handles)) == (2, 2, ["ann", "bob"])
    assert members.join("kitchen", "daphne.response.A!3", "cy")[:2] == (1, 1)


def test_leave_returns_the_handle_and_the_count_left(members):
    members.join("lobby", "daphne.response.A!1", "ann")
    members.join("lobby", "daphne.response.B!1", "bob")
    assert members.leave("lobby", "daphne.response.A!1") == ("ann", 1, 3)
    assert members.leave("lobby", "daphne.response.A!1") is None


def test_two_sockets_with_one_handle_count_twice(members):
    members.join("lobby", "daphne.response.A!1", "ann")
    assert members.join("lobby", "daphne.response.A!2", "ann")[0] == 2


def test_welcome_and_event_frames(members):
    welcome, event = presence.join("lobby", "daphne.response.A!1", "ann")
    assert json.loads(welcome["text"]) == {"type": "welcome", "room": "lobby", "handle": "ann", "members": ["ann"]}
    assert json.loads(event["text"]) == {"type": "presence", "room": "lobby", "event": "join", "handle": "ann",
                                         "members": 1}


@pytest.mark.django_db
def test_a_dead_daphnes_sockets_leave_within_the_ghost_time(redis_url, settings):
    settings.REDIS_HOSTS = [redis_url]
    settings.DAPHNE_HEARTBEAT_TTL, settings.PRESENCE_SWEEP_INTERVAL = 1, 0.5
    layer = channel_layers[DEFAULT_CHANNEL_LAYER]
    alive, dead = "daphne.response.alive!ann", "daphne.response.dead!bob"
    for socket, handle in ((alive, "ann"), (dead, "bob")):
        Group("chat-lobby").add(socket)
        welcome, joined = presence.join("lobby", socket, handle)
        layer.send(socket, welcome)
        layer.send(socket, history.history_frame("lobby"))
        Group("chat-lobby").send(joined)
    # ann's welcome, history, and bob's join.
    assert [layer.receive(["daphne.response.alive!"])[0] for _ in range(3)] == [alive, alive, alive]
    presence.heartbeat("daphne.response.alive!")
    presence.heartbeat("daphne.response.dead!")
    died = time.monotonic()

    # The first sweep only starts the warm-up; the dead daphne goes once its heartbeat expired.
    assert presence.sweep() == 0
    while presence.sweep() == 0:
        assert time.monotonic() - died < presence.ghost_seconds(), "the dead daphne's socket is still present"
        presence.heartbeat("daphne.response.alive!")
        time.sleep(0.05)

    assert presence.members().leave("lobby", dead) is None
    assert list(layer.group_channels("chat-lobby")) == [alive]
    leave = json.loads(layer.receive(["daphne.response.alive!"])[1]["text"])
    assert (leave["event"], leave["handle"], leave["members"]) == ("leave", "bob", 1)
    assert presence.members().join("lobby", "daphne.response.alive!cy", "cy")[0] == 2


def test_no_one_is_swept_right_after_sweeping_resumes(redis_url, settings):
    settings.REDIS_HOSTS = [redis_url]
    settings.DAPHNE_HEARTBEAT_TTL, settings.PRESENCE_SWEEP_INTERVAL = 1, 0.5
    presence.join("lobby", "daphne.response.quiet!1", "ann")
    # A registered daphne without a live heartbeat, as after a long Redis outage.
    presence.heartbeat("daphne.response.quiet!")
    from channels_example.shards import client_for
    client_for(presence.HEARTBEAT_PREFIX + "daphne.response.quiet!").delete(
        presence.HEARTBEAT_PREFIX + "daphne.response.quiet!")
    started = time.monotonic()
    while time.monotonic() - started < settings.DAPHNE_HEARTBEAT_TTL * 0.8:
        assert presence.sweep() == 0
        time.sleep(0.05)
