-- Claim due deadlines for firing, atomically, within a bounded in-flight window.
-- KEYS[1] due ZSET (id -> due time), KEYS[2] in-flight ZSET (id -> lease expiry)
-- ARGV: due_by (claim what is due by then), now (leases that ran out by then come back),
--       lease (the new lease's expiry), limit (per claim), room (in flight at most)
local due_by, now, lease = ARGV[1], ARGV[2], ARGV[3]
local limit, most = tonumber(ARGV[4]), tonumber(ARGV[5])
-- A lease runs out only when its task was really lost: the worker renews it while it runs.
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(expired) do
  redis.call('ZADD', KEYS[2], lease, member)
end
-- Backpressure: no more in flight than the workers can take; the rest stays due, in order.
local room = math.min(limit - #expired, most - redis.call('ZCARD', KEYS[2]))
local due = {}
if room > 0 then
  due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', due_by, 'LIMIT', 0, room)
  for _, member in ipairs(due) do
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZADD', KEYS[2], lease, member)
  end
end
return {due, expired}
