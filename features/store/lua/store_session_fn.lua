-- The per-session write, defined once and called by both result scripts (store_results.lua,
-- write_batch.lua): the state (unless state_json is empty) and the (trigger event id, list
-- JSON) pairs args[first..last]; a list is only stored if none is stored for its trigger yet
-- (HSETNX). The state is written only when the writer's stamp (partition tag, epoch, offset of
-- the event the state follows; tag '' for none) is not behind the session's pos: a fenced
-- writer never overwrites a newer owner's state. Returns, per list, 1 when ours was stored,
-- else the JSON stored before (a redelivery's): the one to publish.
local function store_session(state_key, recs_key, pos_key, ttl, state_json, tp, epoch, offset,
                             args, first, last)
  local current = true
  if tp ~= '' then
    local mark = redis.call('HMGET', pos_key, 'p', 'e', 'o')
    if mark[1] == tp and (tonumber(mark[2]) > epoch or tonumber(mark[3]) > offset) then
      current = false
    end
  end
  if state_json ~= '' and current then redis.call('SET', state_key, state_json, 'EX', ttl) end
  local stored = {}
  for i = first, last, 2 do
    if redis.call('HSETNX', recs_key, args[i], args[i + 1]) == 1 then
      stored[#stored + 1] = 1
    else
      stored[#stored + 1] = redis.call('HGET', recs_key, args[i])
    end
  end
  if last >= first then redis.call('EXPIRE', recs_key, ttl) end
  return stored
end
