-- A whole batch in order (a single Redis server): events of one session see each other's
-- effects exactly as separate calls do, and the fence of each partition is checked and its
-- watermark moved in the same atomic call.
-- KEYS: log, seen, recs, state, pos, att, out of each distinct session; then each partition's
-- hash.
-- ARGV: max events, TTL, #sessions, #partitions; per partition: its tag, the writer's epoch,
-- the batch's end offset there; then per event: its session's index (0-based, 7 keys each),
-- event id, record, held length, held last record, its partition's index (1-based, 0: none),
-- offset and 1 to read the session's attribution (else 0). Returns one reply per event: the
-- per-event reply ({2, ...} for every event of a partition the writer does not own: nothing of
-- it is written), with the attribution read appended when asked, or {-1, error} when Redis
-- refused a command for that event (the event's own commands up to the error took effect, as
-- with a separate call; the other events proceed).
local max_events, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local n_sessions, n_partitions = tonumber(ARGV[3]), tonumber(ARGV[4])
local tags, epochs, ends, owned, out = {}, {}, {}, {}, {}
for j = 1, n_partitions do
  local a = 2 + 3 * j
  tags[j], epochs[j], ends[j] = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  owned[j] = owns_partition(KEYS[7 * n_sessions + j], epochs[j])
end
for i = 5 + 3 * n_partitions, #ARGV, 8 do
  local k, j = tonumber(ARGV[i]) * 7, tonumber(ARGV[i + 5])
  local reply
  if j > 0 and not owned[j] then
    reply = {2, 0, {}, false}
  else
    local tag, epoch = '', 0
    if j > 0 then tag, epoch = tags[j], epochs[j] end
    local ok, r = pcall(apply_event, KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4],
      KEYS[k + 5], ARGV[i + 1], ARGV[i + 2], max_events, ttl, tonumber(ARGV[i + 3]),
      ARGV[i + 4], tag, epoch, tonumber(ARGV[i + 6]))
    reply = r
    if not ok then
      reply = {-1, type(r) == 'table' and r.err or tostring(r)}
    end
  end
  if ARGV[i + 7] == '1' and reply[1] ~= -1 then
    reply = with_attribution(reply, KEYS[k + 6], KEYS[k + 7], ARGV[i + 1])
  end
  out[#out + 1] = reply
end
for j = 1, n_partitions do
  if owned[j] then advance_partition(KEYS[7 * n_sessions + j], epochs[j], ends[j]) end
end
return out
