-- Write a new token if the generation is still the one the writer replaced.
-- KEYS[1]: the token record (hash)
-- ARGV[1]: the generation being replaced (0 when there is no record)
-- ARGV[2]: token  ARGV[3]: expires_at (unix ms)  ARGV[4]: issued_at (unix ms)
-- ARGV[5]: refreshed_by  ARGV[6]: refreshed_at (unix ms)  ARGV[7]: record TTL (ms)
-- Returns the new generation, or 0 when the record has moved on.
local current = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if current ~= tonumber(ARGV[1]) then
  return 0
end
local gen = current + 1
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'generation', gen, 'expires_at', ARGV[3],
  'issued_at', ARGV[4], 'refreshed_by', ARGV[5], 'refreshed_at', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return gen
