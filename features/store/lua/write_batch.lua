-- Everything write_results stores, in one call (a single Redis server), in the order of the
-- per-command path: sessions (each with its attribution), user_latest, user_session, active
-- users (ZADD + trim).
-- KEYS: state, recs, pos, att, out of each session; user_latest of each user with a latest
-- list; user_session of each active user; the active-users index (when there are active users).
-- ARGV: TTL, users kept, #sessions, #latest, #active; per session: state JSON (or ""), its
-- stamp (partition tag or "", epoch, offset), #lists, (trigger id, list JSON) pairs, then its
-- attribution (see store_attribution); the latest lists' JSON; per active user: session id,
-- user id, ts. Returns, per session, the per-list replies of store_session.
local ttl, kept = tonumber(ARGV[1]), tonumber(ARGV[2])
local n_sessions, n_latest, n_active = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local a, out = 6, {}
for s = 1, n_sessions do
  local last = a + 4 + 2 * tonumber(ARGV[a + 4])
  out[s] = store_session(KEYS[5 * s - 4], KEYS[5 * s - 3], KEYS[5 * s - 2], ttl, ARGV[a],
    ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), ARGV, a + 5, last)
  a = store_attribution(KEYS[5 * s - 1], KEYS[5 * s], ttl, out[s], ARGV, a + 5, last)
end
local k = 5 * n_sessions
for u = 1, n_latest do
  redis.call('SET', KEYS[k + u], ARGV[a], 'EX', ttl)
  a = a + 1
end
k = k + n_latest
if n_active > 0 then
  local members = {}
  for u = 1, n_active do
    redis.call('SET', KEYS[k + u], ARGV[a], 'EX', ttl)
    members[#members + 1] = ARGV[a + 2]
    members[#members + 1] = ARGV[a + 1]
    a = a + 3
  end
  local index = KEYS[k + n_active + 1]
  for i = 1, #members, 1000 do
    redis.call('ZADD', index, unpack(members, i, math.min(i + 999, #members)))
  end
  redis.call('ZREMRANGEBYRANK', index, 0, -kept - 1)
end
return out
