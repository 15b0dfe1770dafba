-- Write a newly issued token unless the record holds one issued later.
-- The platform keeps one live token per account, the one it issued last;
-- issue order is the seq taken right after the auth reply (seq.lua), not
-- the generation, which is informational and restarts after data loss.
-- KEYS[1]: the token record (hash)
-- ARGV[1]: the writer's seq  ARGV[2]: token  ARGV[3]: expires_at (unix ms)
-- ARGV[4]: issued_at (unix ms)  ARGV[5]: refreshed_by  ARGV[6]: refreshed_at (unix ms)
-- ARGV[7]: record TTL (ms)  ARGV[8]: credentials fingerprint
-- Returns the new generation, or 0 when the record holds a later token.
local stored = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
if stored >= tonumber(ARGV[1]) then
  return 0
end
local gen = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') + 1
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'generation', gen, 'seq', ARGV[1], 'expires_at', ARGV[3],
  'issued_at', ARGV[4], 'refreshed_by', ARGV[5], 'refreshed_at', ARGV[6], 'credentials', ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return gen
