-- popget.lua: take the first message not expired from the first of these lists that has one.
--
-- KEYS     channel lists, in the order to try them
-- Returns {list, packed message}, or nil.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
for _, list in ipairs(KEYS) do
  while true do
    local item = redis.call('LPOP', list)
    if not item then break end
    local bar = string.find(item, '|', 1, true)
    if bar and tonumber(string.sub(item, 1, bar - 1)) > now then return {list, string.sub(item, bar + 1)} end
  end
end
return nil
