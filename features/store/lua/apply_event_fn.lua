-- The per-event write, defined once and called by both apply scripts (apply_event.lua,
-- apply_batch.lua): apply one event to its session, atomically. Its keys share the
-- {session_id} hash tag: log, seen, recs, state, pos.
-- Arguments: event id, encoded record, max events kept, TTL seconds, what the caller already
-- holds of the log (its length and last record), and the event's stamp: partition tag ('' for
-- none: no fencing), the writer's epoch for that partition and the event's offset.
-- pos holds where the session's last applied event was read: p (partition tag), e (epoch),
-- o (offset). From the same partition, a stamp of an older epoch is FENCED (status 2) and a new
-- event at an offset not above o is OUT_OF_ORDER (status 3); both write nothing.
-- Returns {new (1) or duplicate (0), from, log[from:], stored list of a duplicate or nil}
-- where from is the held length when the held prefix is still the log's prefix, else 0;
-- {2 or 3, 0, {}, false} when refused.
local function apply_event(log, seen, recs, state, pos, id, record, max_events, ttl, held, last,
                           tp, epoch, offset)
  local mark = false
  if tp ~= '' then
    mark = redis.call('HMGET', pos, 'p', 'e', 'o')
    if mark[1] ~= tp then mark = false end
    if mark and tonumber(mark[2]) > epoch then return {2, 0, {}, false} end
  end
  local status, stored = 1, false
  if redis.call('SISMEMBER', seen, id) == 1 then
    status, stored = 0, redis.call('HGET', recs, id)
  else
    if mark and tonumber(mark[3]) >= offset then return {3, 0, {}, false} end
    redis.call('SADD', seen, id)
    redis.call('RPUSH', log, record)
    redis.call('LTRIM', log, -max_events, -1)
    if tp ~= '' then
      redis.call('HSET', pos, 'p', tp, 'e', epoch, 'o', offset)
      redis.call('EXPIRE', pos, ttl)
    end
    redis.call('EXPIRE', log, ttl)
    redis.call('EXPIRE', seen, ttl)
    redis.call('EXPIRE', recs, ttl)
    redis.call('EXPIRE', state, ttl)
  end
  local from = 0
  if held > 0 and redis.call('LINDEX', log, held - 1) == last then from = held end
  return {status, from, redis.call('LRANGE', log, from, -1), stored}
end
