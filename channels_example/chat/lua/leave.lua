-- leave.lua: a socket leaves a room's members.
--
-- KEYS     as join.lua's
-- ARGV[1]  the socket
-- ARGV[2]  the room's name
-- Returns {its handle, who held it, members left, the change's number}, or nil if it was no member.
if KEYS[5] then redis.call('HDEL', KEYS[5], ARGV[1]) end
local handle = redis.call('HGET', KEYS[1], ARGV[1])
if not handle then return nil end
redis.call('HDEL', KEYS[1], ARGV[1])
local held = redis.call('HGET', KEYS[3], handle) or '1 0 unknown'
local space = string.find(held, ' ')
local count, holder = tonumber(string.sub(held, 1, space - 1)), string.sub(held, space + 1)
if count > 1 then redis.call('HSET', KEYS[3], handle, (count - 1) .. ' ' .. holder)
else redis.call('HDEL', KEYS[3], handle) end
local number = redis.call('INCR', KEYS[2])
local left = redis.call('HLEN', KEYS[1])
if left == 0 then redis.call('SREM', KEYS[4], ARGV[2]) end
return {handle, holder, left, number}
