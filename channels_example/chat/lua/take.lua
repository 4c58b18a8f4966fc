-- take.lua: up to ARGV[1] of the chat messages waiting to be stored, oldest first, taken off the queue.
--
-- KEYS[1]  the queue (deliver.lua appends to it)
-- ARGV[1]  how many at most
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then redis.call('LTRIM', KEYS[1], #items, -1) end
return items
