-- One session's results (Redis Cluster). KEYS: state, recs, pos. ARGV: TTL seconds, state JSON
-- (or ""), the stamp (partition tag or "", epoch, offset), then (trigger event id, list JSON)
-- pairs.
return store_session(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), ARGV[2], ARGV[3],
  tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV, 6, #ARGV)
