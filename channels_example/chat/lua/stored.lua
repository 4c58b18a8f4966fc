-- stored.lua: these messages of a room are in the database; its recent list may let them go.
--
-- KEYS[1]  the room's counter
-- KEYS[2]  the room's recent list (newest first)
-- KEYS[3]  the room's unstored set (seq, scored by when it was numbered)
-- ARGV[1]  how many the list keeps in any case (HISTORY_LENGTH)
-- ARGV[2..] the seqs now stored
for i = 2, #ARGV do redis.call('ZREM', KEYS[3], ARGV[i]) end
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local oldest = tonumber(redis.call('ZRANGE', KEYS[3], 0, 0)[1] or seq + 1)
redis.call('LTRIM', KEYS[2], 0, math.max(tonumber(ARGV[1]), seq - oldest + 1) - 1)
return 1
