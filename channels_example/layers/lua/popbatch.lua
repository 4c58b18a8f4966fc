-- popbatch.lua: take up to ARGV[1] messages from one list, and return those not expired.
--
-- KEYS[1]  a channel's list
-- ARGV[1]  how many items to take at most
-- Returns the packed messages, oldest first (expired ones are taken and left out).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return {} end
redis.call('LTRIM', KEYS[1], #items, -1)
local found = {}
for _, item in ipairs(items) do
  local bar = string.find(item, '|', 1, true)
  if bar and tonumber(string.sub(item, 1, bar - 1)) > now then table.insert(found, string.sub(item, bar + 1)) end
end
return found
