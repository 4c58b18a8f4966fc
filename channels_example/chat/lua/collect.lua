-- collect.lua: the sends deliver.lua makes, kept for the worker to make through the channel
-- layer's own API, for a layer that offers no sends of its own in Lua (asgi_redis's, one with
-- several shards or encryption), or when a number must reach a replica before the room sees it
-- (Sentinel: the worker waits with WAIT, then sends). The same functions as the layer's
-- sends.lua (channels_example/layers/lua/sends.lua), which says what each does:
--
--   asgi_setup(config)                    {tag}: the join gate's key (layers/gate.py's TAG)
--   asgi_send(channel, message)           kept in ASGI_OUT as {'channel', channel, message}; true
--   asgi_group_send(group, message)       kept in ASGI_OUT as {'group', group, message}; 0 dropped
--   asgi_live(message, stream, number)    the message tagged for the join gate: the worker takes
--                                         the tag off for a layer without the gate
--   asgi_now()                            Redis's clock: seconds, and milliseconds
--   ASGI_OUT                              the sends kept, in order
local ASGI_OUT = {}
local ASGI_TAG = nil

local function asgi_setup(config)
  ASGI_TAG = cjson.decode(config).tag
end

local function asgi_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) + tonumber(time[2]) / 1e6, tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function asgi_send(channel, message)
  table.insert(ASGI_OUT, {'channel', channel, message})
  return true
end

local function asgi_group_send(group, message)
  table.insert(ASGI_OUT, {'group', group, message})
  return 0
end

local function asgi_live(message, stream, number)
  message[ASGI_TAG] = {stream = stream, seq = number}
  return message
end
