-- A session's attribution (features/store/attribution.py), defined once for the apply and the
-- result scripts of both back-ends. Its keys share the session's hash tag: att (STRING, the
-- state's JSON), out (HASH, event id -> the outcome message that event completed).

-- An apply reply with what attribution reads of the event's session: the stored state and the
-- outcome stored under the event id (false for none).
local function with_attribution(reply, att, out, id)
  reply[5] = redis.call('GET', att)
  reply[6] = redis.call('HGET', out, id)
  return reply
end

-- Whether every list of a session's write is stored as given (args[first..last]: trigger id,
-- list JSON pairs; stored: store_session's per-list replies).
local function lists_as_given(stored, args, first, last)
  local n = 0
  for i = first, last, 2 do
    n = n + 1
    if stored[n] ~= 1 and stored[n] ~= args[i + 1] then return false end
  end
  return true
end

-- Save the state JSON unless the stored one is as far along the same partition (tag, offset)
-- or further, and add the outcomes args[first..last] (event id, outcome JSON pairs) with HSETNX.
-- Returns 1 when the state was written, else 0.
local function save_attribution(att, out, tag, offset, state_json, ttl, args, first, last)
  local cur = redis.call('GET', att)
  if cur then
    local d = cjson.decode(cur)
    if d['tag'] == tag and tonumber(d['offset']) >= offset then return 0 end
  end
  redis.call('SET', att, state_json, 'EX', ttl)
  for i = first, last, 2 do redis.call('HSETNX', out, args[i], args[i + 1]) end
  if last >= first then redis.call('EXPIRE', out, ttl) end
  return 1
end

-- A session's attribution in a result script, after its lists (args[first..last]; stored:
-- their replies) at args[last + 1]: 0 (none), or 1, partition tag, offset, state JSON,
-- #outcomes, (event id, outcome JSON) pairs. Saved only when every list of the session is
-- stored as given (else the state was folded with a list that is not the one published; the
-- caller folds again). Returns the index after the attribution's arguments.
local function store_attribution(att, out, ttl, stored, args, first, last)
  local a = last + 1
  if args[a] ~= '1' then return a + 1 end
  local n = tonumber(args[a + 4])
  local after = a + 5 + 2 * n
  if lists_as_given(stored, args, first, last) then
    save_attribution(att, out, args[a + 1], tonumber(args[a + 2]), args[a + 3], ttl, args,
      a + 5, after - 1)
  end
  return after
end
