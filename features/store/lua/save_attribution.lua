-- One session's attribution state and the outcomes its events completed (features/store/attribution.py).
-- KEYS: the state (STRING), the outcomes (HASH). ARGV: partition tag, offset, state JSON, TTL,
-- then event id / outcome JSON pairs. The state is written only when it is further along the
-- same partition than the stored one; outcomes are never replaced.
local cur = redis.call('GET', KEYS[1])
if cur then
  local d = cjson.decode(cur)
  if d['tag'] == ARGV[1] and tonumber(d['offset']) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
for i = 5, #ARGV, 2 do redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) end
if #ARGV >= 5 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
return 1
