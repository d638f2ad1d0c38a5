-- The per-event write, defined once and called by both apply scripts (apply_event.lua,
-- apply_batch.lua): apply one event to its session, atomically. Its keys share the
-- {session_id} hash tag: log, seen, recs, state.
-- Arguments: event id, encoded record, max events kept, TTL seconds, and what the caller
-- already holds of the log: its length and last record.
-- Returns {new (1) or duplicate (0), from, log[from:], stored list of a duplicate or nil}
-- where from is the held length when the held prefix is still the log's prefix, else 0.
local function apply_event(log, seen, recs, state, id, record, max_events, ttl, held, last)
  local status, stored = 1, false
  if redis.call('SADD', seen, id) == 0 then
    status, stored = 0, redis.call('HGET', recs, id)
  else
    redis.call('RPUSH', log, record)
    redis.call('LTRIM', log, -max_events, -1)
    redis.call('EXPIRE', log, ttl)
    redis.call('EXPIRE', seen, ttl)
    redis.call('EXPIRE', recs, ttl)
    redis.call('EXPIRE', state, ttl)
  end
  local from = 0
  if held > 0 and redis.call('LINDEX', log, held - 1) == last then from = held end
  return {status, from, redis.call('LRANGE', log, from, -1), stored}
end
