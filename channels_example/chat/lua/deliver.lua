-- deliver.lua: a socket's frame put in its order, and the sends of every frame now due made,
-- in one script: the chat's one delivery path on Redis (channels_example/chat/sequencers.py).
--
-- It runs after the functions of a sends library: the channel layer's own
-- (channels_example/layers/lua/sends.lua), which writes the layer's messages from here, or
-- collect.lua, which keeps them for the worker to send through the layer's API. A script runs
-- alone, so whichever worker finds a frame due delivers it, and no lease is needed.
--
-- KEYS[1]  the socket's hash: next (the order due), since (ms: when a gap was first seen),
--          final (the order of its disconnect) and p:<order> (a parked frame's sends, JSON)
-- KEYS[2]  the sorted set of sockets whose disconnect waits behind a gap, scored by ms
-- KEYS[3]  the queue of delivered chat messages waiting to be stored (JSON each)
-- ARGV[1]  what to do, JSON: {mode: "claim" (park this frame, then deliver what is due),
--          "sweep" (deliver what is due) or "now" (deliver these sends, no socket's turn);
--          socket, order, final (true for a disconnect), now_ms, gap_ms, ttl and closed_ttl
--          (s: the hash's life, and after the disconnect), base_key and base (a room's counter
--          to start at base, its last stored seq, or "" for none), store_limit, stream (the
--          join gate's name for chat messages), muted (the muted error frame's text, with @WAIT@
--          and "@RETRY@" to fill in), history {length, idle_expiry, most, unstored_ms} and
--          metrics {messages, latency, latency_sum, errors} (keys)}
-- ARGV[2]  the frame's sends, JSON: a list of [kind, name, content], where kind is
--          "room" (a chat message: content {text (its JSON, without seq), handle, sender,
--          room, group, keys {seq, recent, unstored, muted}, stored (the fields stored),
--          bucket and latency (the latency histogram's bucket, or "", and its seconds)}),
--          "group" or "channel" (a message to send as it is)
-- ARGV[3]  the sends library's configuration (JSON)
-- Returns {"ok", events, out} or {"need_base", events, out, "parked" or "late", room}: events
-- is JSON, a list of "dropped <members> <group>", "full <channel>" or "unstored <seq> <room>";
-- out is ASGI_OUT as JSON, the sends left for the worker. "need_base": a room's counter is
-- missing (Redis lost it, or the room was idle): the frame is back first in line, nothing of
-- it done; run again with base_key and base.
local ctx = cjson.decode(ARGV[1])
local h = KEYS[1]
local events = {}
asgi_setup(ARGV[3])

-- A room's number for a message, and the message kept in its recent list until stored and
-- among the last history.length; nil when its counter is missing and no base was given.
local function number(keys, text, bucket, latency)
  if redis.call('EXISTS', keys.seq) == 0 then
    if keys.seq ~= ctx.base_key then return nil end
    redis.call('SET', keys.seq, ctx.base)
  end
  local seq = redis.call('INCR', keys.seq)
  redis.call('LPUSH', keys.recent, string.sub(text, 1, -2) .. ', "seq": ' .. seq .. '}')
  -- Scored by Redis's clock: one unstored for longer than unstored_ms never will be (its
  -- worker died with it), and the list need not keep it.
  local _, now = asgi_now()
  redis.call('ZADD', keys.unstored, now, seq)
  redis.call('ZREMRANGEBYSCORE', keys.unstored, '-inf', now - ctx.history.unstored_ms)
  local oldest = tonumber(redis.call('ZRANGE', keys.unstored, 0, 0)[1] or seq)
  redis.call('LTRIM', keys.recent, 0, math.min(math.max(ctx.history.length, seq - oldest + 1), ctx.history.most) - 1)
  for _, key in ipairs({keys.seq, keys.recent, keys.unstored}) do redis.call('EXPIRE', key, ctx.history.idle_expiry) end
  redis.call('INCR', ctx.metrics.messages)
  if bucket ~= '' then
    redis.call('HINCRBY', ctx.metrics.latency, bucket, 1)
    redis.call('INCRBYFLOAT', ctx.metrics.latency_sum, latency)
  end
  return seq
end

-- A chat message to its room: refused if its sender is muted there, else numbered, kept,
-- sent to the room's Group and queued for storing.
local function publish(m)
  if m.sender ~= '' then
    local until_s = tonumber(redis.call('HGET', m.keys.muted, m.handle) or '0')
    local now_s = asgi_now()
    if until_s > now_s then
      local wait = until_s - now_s
      local text = string.gsub(ctx.muted, '@WAIT@', string.format('%.0f', wait))
      text = string.gsub(text, '"@RETRY@"', string.format('%.1f', wait))
      redis.call('HINCRBY', ctx.metrics.errors, 'muted', 1)
      if not asgi_send(m.sender, {text = text}) then table.insert(events, 'full ' .. m.sender) end
      return
    end
  end
  local seq = number(m.keys, m.text, m.bucket, m.latency)
  local text = string.sub(m.text, 1, -2) .. ', "seq": ' .. seq .. '}'
  local dropped = asgi_group_send(m.group, asgi_live({text = text}, ctx.stream, seq))
  if dropped > 0 then table.insert(events, 'dropped ' .. dropped .. ' ' .. m.group) end
  m.stored.seq = seq
  if redis.call('LLEN', KEYS[3]) < ctx.store_limit then
    redis.call('RPUSH', KEYS[3], cjson.encode(m.stored))
  else
    table.insert(events, 'unstored ' .. seq .. ' ' .. m.room)
  end
end

-- The room of the first chat message in these sends whose counter is missing, or nil.
local function unnumbered(sends)
  for _, send in ipairs(sends) do
    local keys = send[1] == 'room' and send[3].keys
    if keys and keys.seq ~= ctx.base_key and redis.call('EXISTS', keys.seq) == 0 then return send[2] end
  end
  return nil
end

local function deliver(sends)
  for _, send in ipairs(sends) do
    local kind, name, content = send[1], send[2], send[3]
    if kind == 'room' then
      publish(content)
    elseif kind == 'group' then
      local dropped = asgi_group_send(name, content)
      if dropped > 0 then table.insert(events, 'dropped ' .. dropped .. ' ' .. name) end
    elseif not asgi_send(name, content) then
      table.insert(events, 'full ' .. name)
    end
  end
end

local function parked_any()
  for _, field in ipairs(redis.call('HKEYS', h)) do
    if string.sub(field, 1, 2) == 'p:' then return true end
  end
  return false
end

-- The reorder buffer (channels_example/layers/reorder.py, over the hash): the frames due now,
-- oldest first, taken out of the hash; a gap older than gap_ms is skipped.
local function pop_due()
  local nxt = tonumber(redis.call('HGET', h, 'next') or '1')
  local since = tonumber(redis.call('HGET', h, 'since') or '-1')
  if redis.call('HEXISTS', h, 'p:' .. nxt) == 0 and since >= 0 and ctx.now_ms - since > ctx.gap_ms then
    local lowest = nil
    for _, field in ipairs(redis.call('HKEYS', h)) do
      if string.sub(field, 1, 2) == 'p:' then
        local n = tonumber(string.sub(field, 3))
        if lowest == nil or n < lowest then lowest = n end
      end
    end
    if lowest ~= nil then nxt = lowest end
  end
  local batch, orders = {}, {}
  while true do
    local payload = redis.call('HGET', h, 'p:' .. nxt)
    if not payload then break end
    redis.call('HDEL', h, 'p:' .. nxt)
    table.insert(batch, payload)
    table.insert(orders, nxt)
    nxt = nxt + 1
  end
  redis.call('HSET', h, 'next', nxt)
  if #batch > 0 then
    if parked_any() then redis.call('HSET', h, 'since', ctx.now_ms) else redis.call('HDEL', h, 'since') end
  end
  return batch, orders
end

-- Deliver what is due; the room a frame needs numbered from the database, that frame and
-- those after it back in the hash as if never taken.
local function deliver_due()
  local batch, orders = pop_due()
  for i, payload in ipairs(batch) do
    local sends = cjson.decode(payload)
    local room = unnumbered(sends)
    if room then
      for j = i, #batch do redis.call('HSET', h, 'p:' .. orders[j], batch[j]) end
      redis.call('HSET', h, 'next', orders[i])
      if #batch > i or redis.call('HEXISTS', h, 'since') == 1 then redis.call('HSET', h, 'since', ctx.now_ms) end
      return room
    end
    deliver(sends)
  end
  return nil
end

local function finish(status, ...)
  return {status, cjson.encode(events), cjson.encode(ASGI_OUT), ...}
end

if ctx.mode == 'now' then
  local sends = cjson.decode(ARGV[2])
  local room = unnumbered(sends)
  if room then return finish('need_base', 'late', room) end
  deliver(sends)
  return finish('ok')
end

if ctx.mode == 'sweep' then
  if redis.call('EXISTS', h) == 0 then return finish('ok') end
  local room = deliver_due()
  if room then return finish('need_base', 'parked', room) end
  return finish('ok')
end

-- claim
local nxt = tonumber(redis.call('HGET', h, 'next') or '1')
if ctx.order < nxt then
  -- Its turn was skipped (a gap went stale): sent at once rather than lost.
  local sends = cjson.decode(ARGV[2])
  local room = unnumbered(sends)
  if room then return finish('need_base', 'late', room) end
  deliver(sends)
  return finish('ok')
end
redis.call('HSET', h, 'p:' .. ctx.order, ARGV[2])
if ctx.order ~= nxt and redis.call('HEXISTS', h, 'since') == 0 then redis.call('HSET', h, 'since', ctx.now_ms) end
if ctx.final then redis.call('HSET', h, 'final', ctx.order) end
local room = deliver_due()
-- After delivering: a socket's first frame delivered empties the hash, which deletes it with
-- its expiry, and writing "next" made it anew.
if redis.call('HEXISTS', h, 'final') == 1 then
  redis.call('EXPIRE', h, ctx.closed_ttl)
  if tonumber(redis.call('HGET', h, 'next')) <= tonumber(redis.call('HGET', h, 'final')) then
    redis.call('ZADD', KEYS[2], ctx.now_ms, ctx.socket)
  end
else
  redis.call('EXPIRE', h, ctx.ttl)
end
if room then return finish('need_base', 'parked', room) end
return finish('ok')
