-- Take the next issue sequence number for a token the platform just issued.
-- KEYS[1]: the token record (hash)  KEYS[2]: the issue counter
-- The counter never hands out a number at or below the stored record's seq,
-- so losing the counter (but not the record) cannot make numbers go back.
-- Returns the number.
local n = redis.call('INCR', KEYS[2])
local stored = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if n <= stored then
  n = stored + 1
  redis.call('SET', KEYS[2], n)
end
return n
