-- snapshot.lua: a room's recent messages for a joiner, or for a resume after ARGV[1].
--
-- KEYS[1]  the room's counter (its last seq)
-- KEYS[2]  the room's recent list (newest first)
-- ARGV[1]  since: the seq a resuming client showed last, or "" for a join
-- ARGV[2]  how many a join gets (HISTORY_LENGTH)
-- ARGV[3]  how many a resume gets at most (RESUME_LIMIT)
-- Returns {counter, the items wanted, newest first}, or nil when the room has no counter.
local seq = redis.call('GET', KEYS[1])
if not seq then return nil end
local count = tonumber(ARGV[2])
if ARGV[1] ~= '' and tonumber(ARGV[1]) <= tonumber(seq) then
  count = math.min(tonumber(seq) - tonumber(ARGV[1]), tonumber(ARGV[3]))
end
if count == 0 then return {seq, {}} end
return {seq, redis.call('LRANGE', KEYS[2], 0, count - 1)}
