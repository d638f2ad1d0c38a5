-- One session's results (Redis Cluster). KEYS: state, recs, pos, att, out. ARGV: TTL seconds,
-- state JSON (or ""), the stamp (partition tag or "", epoch, offset), #lists, (trigger event
-- id, list JSON) pairs, then the session's attribution (see store_attribution).
local last = 6 + 2 * tonumber(ARGV[6])
local stored = store_session(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), ARGV[2], ARGV[3],
  tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV, 7, last)
store_attribution(KEYS[4], KEYS[5], tonumber(ARGV[1]), stored, ARGV, 7, last)
return stored
