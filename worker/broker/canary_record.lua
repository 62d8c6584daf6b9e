-- Record a fired canary as the last one, unless a later canary was recorded already.
-- KEYS[1] the canary HASH; ARGV: due_at, fired_at, lateness_s (epoch seconds, seconds)
local known = tonumber(redis.call('HGET', KEYS[1], 'due_at') or '-1')
if tonumber(ARGV[1]) <= known then
  return 0
end
redis.call('HSET', KEYS[1], 'due_at', ARGV[1], 'fired_at', ARGV[2], 'lateness_s', ARGV[3])
return 1
