"""The layer's message format in Redis: each channel a list of ``<expires at, ms>|<content>``.

asgi_redis keeps each message in a key of its own, with an expiry, and puts the key on
its channel's list; a reader pops the key and then fetches and deletes the message, a
second round trip. Here the message travels in the list itself, so a blocked reader's
BLPOP returns it. The content is asgi_redis's (msgpack, encrypted if configured), and so
are the list names, capacities (the list's length) and Groups; every process of a
deployment must use the project's layers, since a stock asgi_redis process would take
these items for keys.

Expired messages are skipped when popped, by Redis's clock (TIME). An item with no ``|``
is an asgi_redis key from before an upgrade, and is skipped too. The scripts that write and
take them are lua/push.lua, lua/chansend.lua, lua/popget.lua and lua/popbatch.lua.
"""
from channels_example.layers import lua

CHANSEND = lua.source("push.lua", "chansend.lua")
POPGET = lua.source("popget.lua")
POPBATCH = lua.source("popbatch.lua")


def message_of(item):
    """The content of a message as its list holds it; None for an asgi_redis key."""
    bar = item.find(b"|")
    return item[bar + 1:] if bar >= 0 else None


def expired(item, now_ms):
    """True for an item whose message expired by ``now_ms`` (Redis's clock), or an asgi_redis key."""
    expires, bar, _ = item.partition(b"|")
    return not bar or int(expires) <= now_ms
