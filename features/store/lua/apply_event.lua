-- One event (Redis Cluster: one call per event, its keys in the session's slot).
-- KEYS: log, seen, recs, state, pos, att, out. ARGV: event id, record, max events, TTL, held
-- length, held last, partition tag ('' for none), epoch, offset, 1 to read the session's
-- attribution (else 0).
local reply = apply_event(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2],
  tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7],
  tonumber(ARGV[8]), tonumber(ARGV[9]))
if ARGV[10] == '1' then reply = with_attribution(reply, KEYS[6], KEYS[7], ARGV[1]) end
return reply
