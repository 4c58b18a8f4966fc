-- chansend.lua: send one message (after push.lua). asgi_redis's send calls it by this name.
--
-- KEYS[1]  a message key: unused (asgi_redis's own script keeps the message there)
-- KEYS[2]  the channel's list
-- ARGV[1]  the packed message
-- ARGV[2]  expiry, seconds
-- ARGV[3]  the channel's capacity
-- Returns nothing, or the error "full".
if not list_push(KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])) then
  return redis.error_reply('full')
end
