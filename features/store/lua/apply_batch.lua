-- A whole batch in order (a single Redis server): events of one session see each other's
-- effects exactly as separate calls do. KEYS: log, seen, recs, state of each distinct session.
-- ARGV: max events, TTL, then per event: its session's index in KEYS (0-based, 4 keys each),
-- event id, record, held length, held last record. Returns one reply per event: the per-event
-- reply, or {-1, error} when Redis refused a command for that event (the event's own
-- commands up to the error took effect, as with a separate call; the other events proceed).
local max_events, ttl, out = tonumber(ARGV[1]), tonumber(ARGV[2]), {}
for i = 3, #ARGV, 5 do
  local k = tonumber(ARGV[i]) * 4
  local ok, reply = pcall(apply_event, KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4],
    ARGV[i + 1], ARGV[i + 2], max_events, ttl, tonumber(ARGV[i + 3]), ARGV[i + 4])
  if not ok then
    reply = {-1, type(reply) == 'table' and reply.err or tostring(reply)}
  end
  out[#out + 1] = reply
end
return out
