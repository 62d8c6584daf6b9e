-- Index deadlines by due time, skipping any a scheduler holds in flight.
-- KEYS[1] due ZSET, KEYS[2] in-flight ZSET; ARGV: score, id, score, id, ...
local armed = 0
for i = 1, #ARGV, 2 do
  if not redis.call('ZSCORE', KEYS[2], ARGV[i + 1]) then
    armed = armed + redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return armed
