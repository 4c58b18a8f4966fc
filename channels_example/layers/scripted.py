"""Sends from inside Redis: Lua functions that write channel messages as the layer would.

An application that does several steps per message in Redis (number it, keep it, fan it
out) pays a round trip for each, and on a network each costs far more than the work. With
these functions it can do them all in one Lua script: the layer hands out their source,
written for its own configuration (prefix, expiry, capacities, the join gate's tag), and
the application puts it in front of its own script:

    asgi_send(channel, message)            a message (a Lua table) to a channel; false when
                                           the channel is full (counted in ``dropped``)
    asgi_group_send(group, message)        to every member of a Group, once per daphne
                                           process as ``send_group`` does; the members dropped
    asgi_live(message, stream, number)     the message tagged for the join gate (gate.live)
    asgi_now()                             Redis's clock: seconds, and milliseconds

Messages are packed with Redis's own cmsgpack, which the layer's ``deserialize`` reads as
it reads its own. The functions exist only where one script can reach every key it
writes: a layer on one Redis server (or one Sentinel service), without encryption
(``symmetric_encryption_keys``: Lua cannot encrypt), whose ``channel_capacity`` patterns
use only ``*`` and ``?``. ``lua_sends()`` is None otherwise, and the application does
its steps one by one.
"""
import logging

from channels_example.layers.lists import LUA_PUSH
from channels_example.layers.gate import GATE, TAG

log = logging.getLogger(__name__)


def lua_string(text):
    """``text`` as a Lua string literal."""
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
        """The functions' Lua source for this layer, or None where one script cannot do the sends."""
        if self._lua_sends is False:
            self._lua_sends = self._build_lua_sends()
        return self._lua_sends

    def _build_lua_sends(self):
        if self.ring_size != 1 or self.crypter is not None:
            return None
        rules = []
        for glob, capacity in self._capacity_globs.items():
            pattern = lua_pattern(glob) if isinstance(glob, str) else None
            if pattern is None:
                log.warning("channel_capacity %r is more than * and ?: Lua sends are off", glob)
                return None
            rules.append("{%s, %d}" % (lua_string(pattern), capacity))
        config = {
            "prefix": lua_string(self.prefix), "expiry": int(self.expiry), "group_expiry": int(self.group_expiry),
            "capacity": int(self.capacity), "rules": ", ".join(rules), "dropped": lua_string(self.key("dropped")),
            "gate": "true" if GATE in self.extensions else "false",
            "tag": lua_string(TAG), "targets": lua_string(self.TARGETS),
        }
        return LUA_PUSH + _LUA_SENDS % config


_LUA_SENDS = """
    local ASGI = {prefix = %(prefix)s, expiry = %(expiry)d, group_expiry = %(group_expiry)d,
                  capacity = %(capacity)d, rules = {%(rules)s}, dropped = %(dropped)s,
                  gate = %(gate)s, tag = %(tag)s, targets = %(targets)s}

    local function asgi_now()
      local time = redis.call('TIME')
      return tonumber(time[1]) + tonumber(time[2]) / 1e6, tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    end

    local function asgi_capacity(channel)
      for _, rule in ipairs(ASGI.rules) do
        if string.match(channel, rule[1]) then return rule[2] end
      end
      return ASGI.capacity
    end

    local function asgi_push(channel, message)
      return list_push(ASGI.prefix .. channel, cmsgpack.pack(message), ASGI.expiry, asgi_capacity(channel))
    end

    local function asgi_send(channel, message)
      local bang = string.find(channel, '!', 1, true)
      if bang then
        message['__asgi_channel__'] = channel
        channel = string.sub(channel, 1, bang)
      end
      if asgi_push(channel, message) then return true end
      redis.call('INCR', ASGI.dropped)
      return false
    end

    local function asgi_group_send(group, message)
      local key = ASGI.prefix .. ':group:' .. group
      local now = asgi_now()
      redis.call('ZREMRANGEBYSCORE', key, 0, math.floor(now) - ASGI.group_expiry)
      local targets, processes = {}, {}
      for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
        local bang = string.find(member, '!', 1, true)
        local process = bang and string.sub(member, 1, bang) or member
        if not targets[process] then
          targets[process] = {}
          table.insert(processes, process)
        end
        table.insert(targets[process], member)
      end
      local dropped = 0
      for _, process in ipairs(processes) do
        local copy = {}
        for field, value in pairs(message) do copy[field] = value end
        if string.sub(process, -1) == '!' then
          copy['__asgi_channel__'] = process
          copy[ASGI.targets] = targets[process]
        end
        if not asgi_push(process, copy) then dropped = dropped + #targets[process] end
      end
      if dropped > 0 then redis.call('INCRBY', ASGI.dropped, dropped) end
      return dropped
    end

    local function asgi_live(message, stream, number)
      if ASGI.gate then message[ASGI.tag] = {stream = stream, seq = number} end
      return message
    end
"""
