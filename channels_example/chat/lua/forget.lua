-- forget.lua: a moderator deleted a message: it leaves the room's recent list.
--
-- KEYS[1]  the room's recent list
-- ARGV[1]  how the item to remove ends: its seq, as deliver.lua wrote it (, "seq": N})
-- Returns 1 if an item was removed, else 0.
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if string.sub(item, -#ARGV[1]) == ARGV[1] then
    redis.call('LREM', KEYS[1], 1, item)
    return 1
  end
end
return 0
