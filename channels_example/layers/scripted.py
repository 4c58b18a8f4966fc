"""Sends from inside Redis: the layer's sends, as Lua functions an application's script may call.

An application that does several steps per message in Redis (number it, keep it, fan it
out) pays a round trip for each, and on a network each costs far more than the work. With
these functions it does them all in one script: ``lua_sends()`` gives their source
(lua/push.lua and lua/sends.lua, which say what each function does) and the layer's
configuration as one JSON argument, which the script hands to ``asgi_setup``. Nothing of the
configuration is written into the source: one script serves every layer configuration.

They exist only where one script can reach every key it writes: a layer on one Redis
server (or one Sentinel service), without encryption (``symmetric_encryption_keys``: Lua
cannot encrypt), whose ``channel_capacity`` patterns use only ``*`` and ``?``. ``lua_sends()``
is None otherwise, and the application makes its sends through the layer's Python API. The
layer lists LUA_SENDS among its ``extensions``.
"""
import json
import logging

from channels_example.layers import lua
from channels_example.layers.gate import GATE, TAG

log = logging.getLogger(__name__)

SOURCE = lua.source("push.lua", "sends.lua")
LUA_SENDS = "lua_sends"  # the layer extension


def lua_pattern(glob):
    """An fnmatch glob of ``*`` and ``?`` as an anchored Lua pattern; None for anything richer."""
    if "[" in glob:
        return None
    out = []
    for char in glob:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char.isalnum():
            out.append(char)
        else:
            out.append("%" + char)
    return "^" + "".join(out) + "$"


class LuaSends:
    """Mixed into the Redis layers (channels_example.layers.redis), which give it ``key``."""

    def __init__(self, channel_capacity=None, **config):
        super().__init__(channel_capacity=channel_capacity, **config)
        self._capacity_globs = dict(channel_capacity or {})
        self._lua_sends = False  # not built yet

    def lua_sends(self):
        """``(the functions' Lua source, the layer's configuration as JSON)``, or None where one script
        cannot do the sends."""
        if self._lua_sends is False:
            self._lua_sends = self._configured()
        return self._lua_sends

    def _configured(self):
        if self.ring_size != 1 or self.crypter is not None:
            return None
        rules = []
        for glob, capacity in self._capacity_globs.items():
            pattern = lua_pattern(glob) if isinstance(glob, str) else None
            if pattern is None:
                log.warning("channel_capacity %r is more than * and ?: Lua sends are off", glob)
                return None
            rules.append([pattern, capacity])
        config = {"prefix": self.prefix, "expiry": int(self.expiry), "group_expiry": int(self.group_expiry),
                  "capacity": int(self.capacity), "rules": rules, "dropped": self.key("dropped"),
                  "gate": GATE in self.extensions, "tag": TAG, "targets": self.TARGETS}
        return SOURCE, json.dumps(config)
