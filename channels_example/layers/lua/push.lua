-- push.lua: the layer's message format, as a function for the scripts below it.
--
-- A channel is a Redis list of items "<expires at, ms by Redis's clock>|<packed message>"
-- (channels_example/layers/lists.py): the message travels in its list, so a reader's BLPOP
-- returns it whole.
--
-- list_push(list, content, expiry s, capacity): push a message onto its channel's list; false
-- when the list holds ``capacity`` already. The list expires a second after its last message.
local function list_push(list, content, expiry, capacity)
  if redis.call('LLEN', list) >= capacity then return false end
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('RPUSH', list, (now + expiry * 1000) .. '|' .. content)
  redis.call('EXPIRE', list, expiry + 1)
  return true
end
