-- sends.lua: the layer's sends, as functions an application's script may call (after push.lua).
--
-- An application that numbers, keeps and fans out a message in Redis pays a round trip for
-- each step; with these it does them all in one script. The application puts push.lua and
-- this file in front of its own script, and passes the layer's configuration as one of its
-- arguments (``lua_sends()`` gives both, channels_example/layers/scripted.py), which it hands
-- to asgi_setup before any send:
--
--   asgi_setup(config JSON)               {prefix, expiry, group_expiry, capacity, rules =
--                                          {{lua pattern, capacity}...}, dropped, gate, tag, targets}
--   asgi_send(channel, message)           a message (a Lua table) to a channel; false when the
--                                          channel is full (counted at ``dropped``)
--   asgi_group_send(group, message)       to every member of a Group, one copy per daphne
--                                          process, as the layer's send_group does; how many
--                                          members it dropped
--   asgi_live(message, stream, number)    the message tagged for the join gate (gate.live)
--   asgi_now()                            Redis's clock: seconds, and milliseconds
--   ASGI_OUT                              sends left for the caller to make: none here
--
-- Messages are packed with Redis's own cmsgpack, which the layer's deserialize reads as it
-- reads its own.
local ASGI = nil
local ASGI_OUT = {}

local function asgi_setup(config)
  ASGI = cjson.decode(config)
end

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
