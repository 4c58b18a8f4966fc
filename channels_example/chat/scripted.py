"""One round trip per frame: a socket's frames put in order, and their sends done, in one Lua script.

The RedisSequencer (channels_example.chat.sequencers) claims a frame's turn in Redis,
and the worker then sends what the frame sent, step by step: for a chat message, the
mute check, numbering and the recent list, the Group's members, the fan-out, the queue
for storing; then it hands the turn over. Each step is a round trip, about ten per
chat message, and with Redis on another host those round trips are most of a
message's latency (docs/performance.md).

Where one Redis server holds every key (one server, or one Sentinel service; no
encryption), the ScriptedSequencer does all of it in the script that parks the frame:
the channel layer supplies Lua functions that send as it does
(channels_example.layers.scripted), history supplies the numbering step (LUA_APPEND),
and the sequencer's reorder step (LUA_POP_DUE) decides which frames are due. A script
runs alone, so no lease is needed: whichever worker's script finds a frame due
delivers it, and everything it sends is sent before any other script runs. Same
state, same guarantees, same frames on the wire as the step-by-step path, which stays
for sharded layers, encrypted layers and Sentinel's wait for a replica
(settings.NUMBERING_REPLICAS: the wait must come between numbering and fan-out).

A chat message is handed to the script already encoded (``_room_send``): its JSON
without ``seq``, which the script completes exactly as the recent list keeps it.
A room whose counter Redis has lost (or never had) needs the database's last number:
the script then stops before that frame, changing nothing of it, and says so; the
worker reads the number and runs it again.
"""
import json
import logging
import time

from django.conf import settings

from channels_example.chat import history, metrics, protocol
from channels_example.chat.recent import LUA_APPEND, append_args, append_keys, stored_upto
from channels_example.chat.rooms import Room
from channels_example.chat.sequencers import CLOSING_KEY, KEY_PREFIX, LUA_POP_DUE, RedisSequencer, _now_ms

log = logging.getLogger(__name__)


def available(shards):
    """Whether the scripted path can work over these shards (the layer offers its Lua sends)."""
    sends = getattr(shards.layer, "lua_sends", None)
    return sends is not None and sends() is not None and not settings.NUMBERING_REPLICAS


class ScriptedSequencer(RedisSequencer):
    def __init__(self, shards):
        super().__init__(shards)
        self.source = shards.layer.lua_sends() + LUA_APPEND + LUA_POP_DUE + _DELIVER
        # The error frame for a muted sender, with the seconds left for the script to fill in.
        self.muted = protocol.error("muted", protocol.MUTED_DETAIL % "@WAIT@", retry_after="@RETRY@")["text"]

    def complete(self, socket, order, sends, final=False):
        payload = json.dumps([self._encoded(send) for send in sends], ensure_ascii=False)
        self._run(socket, ["claim", order, payload, int(final)])

    def sweep_socket(self, socket):
        self._run(socket, ["sweep", 0, "", 0])

    def _run(self, socket, head):
        base = ["", ""]
        while True:
            args = head + [_now_ms(), int(settings.ORDERING_GAP_SECONDS * 1000), settings.WEBSOCKET_LIFETIME,
                           settings.CHANNEL_MESSAGE_EXPIRY] + base
            status, *events = self.shards.run(self.source, [KEY_PREFIX + socket, CLOSING_KEY], args)
            if status != b"need_base":
                self._report(socket, events)
                return
            # A room Redis does not number: the database's last number, and again. A frame that
            # was parked is in the hash again, first due; one late is sent again as it was.
            *events, where, room = events
            self._report(socket, events)
            room = Room(room.decode("utf-8"))
            base = [room.key("seq"), stored_upto(room)]
            if where == b"parked":
                head = ["sweep", 0, "", 0]

    def _encoded(self, send):
        kind, name, content = send
        return _room_send(Room(name), content, self.muted) if kind == "room" else send

    def _report(self, socket, events):
        for event in events:
            what, *details = event.decode("utf-8").split(" ", 2)
            if what in ("dropped", "full"):
                self.shards.layer.dropped += int(details[0]) if what == "dropped" else 1
            if what == "dropped":
                log.warning("dropped a message to group %s for %s members: the channel of their daphne is full",
                            details[1], details[0])
            elif what == "full":
                log.warning("dropped a frame for %s from %s: its channel is full", details[0], socket)
            elif what == "unstored":
                log.error("message %s of room %r delivered but not stored: %s is full", details[0], details[1],
                          history.STORE_CHANNEL)


def _room_send(room, sent, muted):
    """A chat message (rooms.Room.send's ``{"message", "sender"}``) as the script publishes it."""
    message = dict(sent["message"])
    received_at = message.pop("received_at", None)
    latency = None if received_at is None else time.time() - received_at
    stored = {field: message[field] for field in ("handle", "signed_in", "sender", "message", "ts")}
    stored["room"] = room.name
    return ["room", room.name, {
        "text": json.dumps(message, ensure_ascii=False), "handle": message["handle"], "sender": sent["sender"] or "",
        "muted_key": room.key("muted"), "muted": muted, "errors": metrics.ERRORS,
        "keys": append_keys(room), "args": append_args("", latency)[1:], "group": room.group_name,
        "stream": history.STREAM, "stored": stored, "store_channel": history.STORE_CHANNEL,
    }]


# KEYS: the socket's hash, the set of sockets whose disconnect waits behind a gap (CLOSING_KEY).
# ARGV: mode ('claim': park this frame, then deliver what is due; 'sweep': deliver what is due),
# order, payload (JSON: the frame's sends), final (0/1), now ms, gap ms, ttl s, closed ttl s,
# a room's counter key and the number to start it from ('' '' for none).
# Returns {'ok', events...} or {'need_base', events..., 'parked' or 'late', room}; an event is
# 'dropped <members> <group>', 'full <channel>' or 'unstored <seq> <room>'.
_DELIVER = """
    local h, mode, order, now = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5])
    local gap_ms, base_key, base = tonumber(ARGV[6]), ARGV[9], ARGV[10]
    local socket = string.sub(h, string.len('""" + KEY_PREFIX + """') + 1)
    local events = {}

    local function unnumbered(sends)
      for _, send in ipairs(sends) do
        if send[1] == 'room' and send[2] ~= nil then
          local seq_key = send[3].keys[1]
          if seq_key ~= base_key and redis.call('EXISTS', seq_key) == 0 then return send[2] end
        end
      end
      return nil
    end

    local function publish(room, d)
      if d.sender ~= '' then
        local until_s = tonumber(redis.call('HGET', d.muted_key, d.handle) or '0')
        local now_s = asgi_now()
        if until_s > now_s then
          local wait = until_s - now_s
          local text = string.gsub(d.muted, '@WAIT@', string.format('%.0f', wait))
          text = string.gsub(text, '"@RETRY@"', string.format('%.1f', wait))
          redis.call('HINCRBY', d.errors, 'muted', 1)
          if not asgi_send(d.sender, {text = text}) then table.insert(events, 'full ' .. d.sender) end
          return
        end
      end
      local first = ''
      if d.keys[1] == base_key then first = base end
      local a = d.args
      local seq = history_append(d.keys, d.text, a[1], a[2], a[3], first, a[5], a[6], a[7])
      local text = string.sub(d.text, 1, -2) .. ', "seq": ' .. seq .. '}'
      local dropped = asgi_group_send(d.group, asgi_live({text = text}, d.stream, seq))
      if dropped > 0 then table.insert(events, 'dropped ' .. dropped .. ' ' .. d.group) end
      local stored = d.stored
      stored.seq = seq
      if not asgi_send(d.store_channel, stored) then table.insert(events, 'unstored ' .. seq .. ' ' .. room) end
    end

    local function deliver(sends)
      for _, send in ipairs(sends) do
        local kind, name, content = send[1], send[2], send[3]
        if kind == 'room' then
          publish(name, content)
        elseif kind == 'group' then
          local dropped = asgi_group_send(name, content)
          if dropped > 0 then table.insert(events, 'dropped ' .. dropped .. ' ' .. name) end
        elseif not asgi_send(name, content) then
          table.insert(events, 'full ' .. name)
        end
      end
    end

    local function need_base(where, room)
      table.insert(events, 1, 'need_base')
      table.insert(events, where)
      table.insert(events, room)
      return events
    end

    local function deliver_due()
      local batch, orders = pop_due(h, now, gap_ms)
      for i, payload in ipairs(batch) do
        local sends = cjson.decode(payload)
        local room = unnumbered(sends)
        if room then
          -- Back in the hash, this one first due, as if never taken.
          for j = i, #batch do redis.call('HSET', h, 'p:' .. orders[j], batch[j]) end
          redis.call('HSET', h, 'next', orders[i])
          if #batch > i or redis.call('HEXISTS', h, 'since') == 1 then redis.call('HSET', h, 'since', now) end
          return room
        end
        deliver(sends)
      end
      return nil
    end

    local room
    if mode == 'sweep' then
      if redis.call('EXISTS', h) == 0 then return {'ok'} end
      room = deliver_due()
      if room then return need_base('parked', room) end
    else
      local nxt = tonumber(redis.call('HGET', h, 'next') or '1')
      if order < nxt then
        -- Its turn was skipped (a gap went stale): sent at once rather than lost.
        local sends = cjson.decode(ARGV[3])
        room = unnumbered(sends)
        if room then return need_base('late', room) end
        deliver(sends)
      else
        redis.call('HSET', h, 'p:' .. order, ARGV[3])
        if order ~= nxt and redis.call('HEXISTS', h, 'since') == 0 then redis.call('HSET', h, 'since', now) end
        if ARGV[4] == '1' then redis.call('HSET', h, 'final', order) end
        room = deliver_due()
        if redis.call('HEXISTS', h, 'final') == 1 then
          redis.call('EXPIRE', h, ARGV[8])
          if tonumber(redis.call('HGET', h, 'next')) <= tonumber(redis.call('HGET', h, 'final')) then
            redis.call('ZADD', KEYS[2], now, socket)
          end
        else
          redis.call('EXPIRE', h, ARGV[7])
        end
        if room then return need_base('parked', room) end
      end
    end
    table.insert(events, 1, 'ok')
    return events
"""
