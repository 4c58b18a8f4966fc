"""Room members (channels_example.chat.presence), in memory and in a real Redis, and the sweep of dead daphnes."""
import json
import time

import pytest

from channels_example.chat import presence, protocol, rooms
from channels_example.chat.identity import Speaker
from channels_example.chat.processes import DAPHNES, WORKERS, processes
from channels_example.chat.rooms import Room

LOBBY, KITCHEN = Room("lobby"), Room("kitchen")


def guest(handle, person=None):
    return Speaker(handle, False, False, person or "guest:" + handle)


@pytest.fixture(params=["memory", "redis", "stock"])
def members(request):
    """The deployment's members store: runserver's, or on Redis under the project's layer or asgi_redis's own."""
    if request.param != "memory":
        request.getfixturevalue("redis_layer" if request.param == "redis" else "stock_layer")
    return presence.members()


def test_join_returns_the_count_a_change_number_everyones_handles_and_the_signed_in_ones(members):
    assert members.join(LOBBY, "daphne.response.A!1", "ann", "0 guest:a") == (1, 1, ["ann"], [])
    count, number, handles, signed_in = members.join(LOBBY, "daphne.response.A!2", "bob", "1 user:2")
    assert (count, number, sorted(handles), signed_in) == (2, 2, ["ann", "bob"], ["bob"])
    assert members.join(KITCHEN, "daphne.response.A!3", "cy", "0 guest:c")[:2] == (1, 1)


def test_leave_returns_the_handle_who_held_it_and_the_count_left(members):
    members.join(LOBBY, "daphne.response.A!1", "ann", "1 user:1")
    members.join(LOBBY, "daphne.response.B!1", "bob", "0 guest:b")
    assert members.leave(LOBBY, "daphne.response.A!1") == ("ann", "1 user:1", 1, 3)
    assert members.leave(LOBBY, "daphne.response.A!1") is None


def test_one_person_on_two_sockets_counts_twice(members):
    members.join(LOBBY, "daphne.response.A!1", "ann", "1 user:1")
    assert members.join(LOBBY, "daphne.response.A!2", "ann", "1 user:1")[0] == 2


def test_a_name_belongs_to_one_person_at_a_time_in_a_room(members):
    members.join(LOBBY, "daphne.response.A!1", "ann", "0 guest:first")
    assert members.join(LOBBY, "daphne.response.A!2", "ann", "0 guest:second") is None
    assert members.join(KITCHEN, "daphne.response.A!3", "ann", "0 guest:second") is not None
    members.leave(LOBBY, "daphne.response.A!1")
    # Once the first has left, the name is free.
    assert members.join(LOBBY, "daphne.response.A!2", "ann", "0 guest:second")[0] == 1


def test_a_second_person_with_a_name_in_use_is_refused_with_the_reason(members):
    presence.join(LOBBY, "daphne.response.A!1", guest("ann"))
    with pytest.raises(protocol.ProtocolError) as refused:
        presence.join(LOBBY, "daphne.response.A!2", guest("ann", "guest:someone-else"))
    assert refused.value.code == "handle_in_use"


def test_welcome_and_event_frames(members):
    ann = Speaker("ann", True, True, "user:7")
    welcome, event = presence.join(LOBBY, "daphne.response.A!1", ann)
    assert json.loads(welcome["text"]) == {"type": "welcome", "room": "lobby", "handle": "ann", "signed_in": True,
                                           "staff": True, "sender": ann.sender, "members": ["ann"],
                                           "members_signed_in": ["ann"]}
    assert json.loads(event["text"]) == {"type": "presence", "room": "lobby", "event": "join", "handle": "ann",
                                         "signed_in": True, "members": 1}
    left = presence.leave(LOBBY, "daphne.response.A!1")
    assert (json.loads(left["text"])["event"], json.loads(left["text"])["signed_in"]) == ("leave", True)


def test_a_joiner_learns_which_members_already_there_are_signed_in(members):
    presence.join(LOBBY, "daphne.response.A!1", Speaker("ann", True, False, "user:7"))
    presence.join(LOBBY, "daphne.response.A!2", guest("bob"))
    welcome, _ = presence.join(LOBBY, "daphne.response.A!3", guest("cy"))
    assert json.loads(welcome["text"])["members_signed_in"] == ["ann"]


def beat(daphne):
    processes().beat(DAPHNES, daphne)


def sweep_until_gone(layer, socket, group, alive):
    """Sweep as the workers do on chat.sweep, keeping ``alive``'s heartbeat, until ``socket`` left ``group``."""
    started = time.monotonic()
    while socket in layer.group_channels(group):
        assert time.monotonic() - started < presence.ghost_seconds(), "the dead daphne's socket is still present"
        beat(alive)
        rooms.sweep()
        time.sleep(0.05)  # sweeps come once a SWEEP_INTERVAL: the clock is the event


@pytest.mark.django_db
def test_a_dead_daphnes_sockets_leave_their_rooms_within_the_ghost_time(redis_layer, settings):
    settings.DAPHNE_HEARTBEAT_TTL = 1
    settings.SWEEP_INTERVAL = 0.5
    alive, dead = "daphne.response.alive!ann", "daphne.response.dead!bob"
    for socket, handle in ((alive, "ann"), (dead, "bob")):
        welcome, history_frame, joined = LOBBY.join(socket, guest(handle))
        for frame in (welcome, history_frame):
            redis_layer.send(socket, frame)
        LOBBY.group.send(joined)
    # ann's welcome, history, and bob's join.
    assert [redis_layer.receive(["daphne.response.alive!"])[0] for _ in range(3)] == [alive, alive, alive]
    beat("daphne.response.alive!")
    beat("daphne.response.dead!")

    # The first sweep only starts the warm-up; the dead daphne goes once its heartbeat expired.
    assert presence.dead_daphnes() == []
    sweep_until_gone(redis_layer, dead, LOBBY.group_name, "daphne.response.alive!")

    assert presence.members().leave(LOBBY, dead) is None
    assert list(redis_layer.group_channels(LOBBY.group_name)) == [alive]
    leave = json.loads(redis_layer.receive(["daphne.response.alive!"])[1]["text"])
    assert (leave["event"], leave["handle"], leave["members"]) == ("leave", "bob", 1)
    assert processes().dead_daphnes() == []  # swept, then forgotten
    assert presence.members().join(LOBBY, "daphne.response.alive!cy", "cy", "0 guest:cy")[0] == 2


def test_no_one_is_swept_right_after_sweeping_resumes(redis_layer, settings):
    settings.SWEEP_INTERVAL = 0.5
    presence.join(LOBBY, "daphne.response.quiet!1", guest("ann"))
    # A registered daphne without a live heartbeat, as after a long Redis outage.
    processes().shards.client(DAPHNES).zadd(DAPHNES, **{"daphne.response.quiet!": time.time() - 60})
    settings.DAPHNE_HEARTBEAT_TTL = 1
    assert processes().dead_daphnes() == ["daphne.response.quiet!"]
    started = time.monotonic()
    while time.monotonic() - started < settings.DAPHNE_HEARTBEAT_TTL * 0.8:
        assert presence.dead_daphnes() == []
        time.sleep(0.05)


def test_over_two_shards_a_rooms_keys_live_together_and_events_are_numbered_once(
        redis_url, tmp_path, settings, as_default_layer):
    """A moderator's event is numbered with the room's joins and leaves: on one counter, on the
    server of the room's Group, however many shards there are."""
    from channels_example import topology
    from channels_example.layers import RedisChannelLayer
    from tests.servers import Process, free_port

    port = free_port()
    (tmp_path / "second").mkdir()
    second = Process("redis-2", topology.redis_argv(port, tmp_path / "second"), port=port,
                     log_path=tmp_path / "redis-2.log").start()
    try:
        layer = as_default_layer(RedisChannelLayer(**dict(
            settings.REDIS_TRANSPORT, hosts=[redis_url, "redis://127.0.0.1:%d/0" % port])))
        room = Room("room-1")
        # The room's keys hash to different servers by their own names: they must not be placed so.
        assert len({layer.consistent_hash(room.key(part)) for part in ("members", "presence", "seq")}) > 1
        members = presence.members()
        assert members.join(room, "daphne.response.A!1", "ann", "0 guest:a")[1] == 1
        assert members.next_event(room) == 2
        assert members.leave(room, "daphne.response.A!1")[3] == 3
        home = layer.connection(layer.consistent_hash(room.group_name))
        assert int(home.get(room.key("presence"))) == 3
    finally:
        second.stop()


@pytest.mark.usefixtures("redis_layer")
def test_a_daphne_whose_heartbeat_stopped_is_named_dead_until_forgotten(settings):
    settings.DAPHNE_HEARTBEAT_TTL = 60
    processes().shards.client(DAPHNES).zadd(DAPHNES, **{"daphne.response.gone!": time.time() - 61})
    beat("daphne.response.alive!")
    assert processes().dead_daphnes() == ["daphne.response.gone!"]
    assert processes().alive(DAPHNES) == ["daphne.response.alive!"]
    processes().forget("daphne.response.gone!")
    assert processes().dead_daphnes() == []


@pytest.mark.usefixtures("redis_layer")
def test_workers_are_counted_while_they_beat():
    assert processes().alive(WORKERS) == []
    processes().beat(WORKERS, "vm:123")
    assert processes().alive(WORKERS) == ["vm:123"]
