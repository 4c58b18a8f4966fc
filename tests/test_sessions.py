"""Channel sessions in Redis (channels_example.backends.sessions), against a real redis-server:
a worker reads a socket's session from Redis once, then from memory, for a bounded time and count."""
import pytest
from channels.message import Message
from channels.sessions import channel_session, session_for_reply_channel

from channels_example.backends import sessions


def calls(redis_layer, command):
    """How many times Redis ran ``command`` so far."""
    stats = redis_layer.connection(0).info("commandstats")
    return stats.get("cmdstat_" + command, {}).get("calls", 0)


@pytest.fixture
def fresh_cache(settings, redis_layer):
    settings.CHANNEL_SESSION_ENGINE = "channels_example.backends.sessions"
    sessions._read = sessions._Read()
    yield
    sessions._read = sessions._Read()


def written_elsewhere(redis_layer, reply_channel, **data):
    """The socket's session as another worker writes it: straight to Redis."""
    store = session_for_reply_channel(reply_channel)
    key = sessions.KEY_PREFIX + store.session_key
    redis_layer.connection(0).set(key, store.encode(data), ex=60)


def test_a_session_is_read_from_redis_once_then_from_memory(redis_layer, fresh_cache):
    written_elsewhere(redis_layer, "daphne.response.a!one", room="lobby")
    gets, exists = calls(redis_layer, "get"), calls(redis_layer, "exists")
    first = session_for_reply_channel("daphne.response.a!one")
    assert first["room"] == "lobby" and first.exists(first.session_key)
    assert calls(redis_layer, "get") == gets + 1
    for _ in range(5):
        again = session_for_reply_channel("daphne.response.a!one")
        assert again["room"] == "lobby" and again.exists(again.session_key)
    assert calls(redis_layer, "get") == gets + 1
    assert calls(redis_layer, "exists") == exists


def test_what_a_worker_saves_it_reads_back_without_redis(redis_layer, fresh_cache):
    session = session_for_reply_channel("daphne.response.a!two")
    session["room"] = "café"
    session.save()
    gets = calls(redis_layer, "get")
    assert session_for_reply_channel("daphne.response.a!two")["room"] == "café"
    assert calls(redis_layer, "get") == gets


def test_an_entry_expires_and_the_change_made_elsewhere_is_read(redis_layer, fresh_cache, settings):
    written_elsewhere(redis_layer, "daphne.response.a!three", room="lobby")
    assert session_for_reply_channel("daphne.response.a!three")["room"] == "lobby"
    written_elsewhere(redis_layer, "daphne.response.a!three", room="kitchen")
    assert session_for_reply_channel("daphne.response.a!three")["room"] == "lobby"
    settings.CHANNEL_SESSION_CACHE_SECONDS = 0
    assert session_for_reply_channel("daphne.response.a!three")["room"] == "kitchen"


def test_the_cache_holds_at_most_its_size_and_forgets_deleted_sessions(redis_layer, fresh_cache, settings):
    settings.CHANNEL_SESSION_CACHE_SIZE = 2
    for name in ("x", "y", "z"):
        written_elsewhere(redis_layer, "daphne.response.a!" + name, room=name)
        session_for_reply_channel("daphne.response.a!" + name).load()
    assert len(sessions._read._entries) == 2
    gets = calls(redis_layer, "get")
    assert session_for_reply_channel("daphne.response.a!x")["room"] == "x"  # evicted: read again
    assert calls(redis_layer, "get") == gets + 1
    session = session_for_reply_channel("daphne.response.a!z")
    session.delete()
    assert session_for_reply_channel("daphne.response.a!z").get("room") is None


def test_a_connect_reads_its_missing_session_once_and_writes_it_once(redis_layer, fresh_cache):
    @channel_session
    def consumer(message):
        message.channel_session["room"] = "lobby"

    before = {command: calls(redis_layer, command) for command in ("get", "exists", "set")}
    consumer(Message({"reply_channel": "daphne.response.a!new", "path": "/lobby/"}, "websocket.connect",
                     redis_layer))
    assert {command: calls(redis_layer, command) - count for command, count in before.items()} == {
        "get": 1, "exists": 0, "set": 1}
    sessions._read = sessions._Read()  # as another worker reads it
    assert session_for_reply_channel("daphne.response.a!new")["room"] == "lobby"
