-- join.lua: a socket joins a room's members, unless another person holds its name there.
--
-- KEYS[1]  the room's members (socket -> handle)
-- KEYS[2]  the room's change counter (joins, leaves and moderators' events, numbered)
-- KEYS[3]  the room's names (handle -> "<sockets> <holder>")
-- KEYS[4]  the set of rooms with members (chat.metrics)
-- KEYS[5]  optional: the socket's daphne's index (socket -> room), where it is on this server
-- ARGV[1]  the socket
-- ARGV[2]  its handle
-- ARGV[3]  expiry of the room's keys (s)
-- ARGV[4]  who holds the name: "<signed in 0/1> <person>"
-- ARGV[5]  the room's name
-- Returns {members now, the change's number, every handle, the handles held by someone signed
-- in}, or nil when another holder has the handle.
local held = redis.call('HGET', KEYS[3], ARGV[2])
local count = 0
if held then
  local space = string.find(held, ' ')
  if string.sub(held, space + 1) ~= ARGV[4] then return nil end
  count = tonumber(string.sub(held, 1, space - 1))
end
if KEYS[5] then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[5])
  redis.call('EXPIRE', KEYS[5], ARGV[3])
end
redis.call('HSET', KEYS[3], ARGV[2], (count + 1) .. ' ' .. ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local number = redis.call('INCR', KEYS[2])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
redis.call('SADD', KEYS[4], ARGV[5])
local handles = redis.call('HVALS', KEYS[1])
local names, signed_in = redis.call('HGETALL', KEYS[3]), {}
for i = 1, #names, 2 do
  if string.match(names[i + 1], '^%d+ 1 ') then signed_in[#signed_in + 1] = names[i] end
end
return {#handles, number, handles, signed_in}
