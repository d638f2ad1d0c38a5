-- One session's results (Redis Cluster). KEYS: state, recs. ARGV: TTL seconds, state JSON (or
-- ""), then (trigger event id, list JSON) pairs.
return store_session(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], ARGV, 3, #ARGV)
