-- The per-partition fence, defined once (apply_batch.lua on a single server; check_partition.lua
-- and advance_partition.lua on a cluster, where the partition's key has a slot of its own).
-- A partition's HASH holds epoch (its owner's, raised by every assignment) and next (every
-- offset below it has been applied or dead-lettered).

-- Whether the writer at `epoch` owns the partition. A partition without an epoch lost its data
-- (a Redis wiped or restarted empty): the writer's epoch is taken as the owner's.
local function owns_partition(key, epoch)
  local stored = redis.call('HGET', key, 'epoch')
  if not stored then
    redis.call('HSET', key, 'epoch', epoch)
    return true
  end
  return tonumber(stored) == epoch
end

-- next = max(next, end), if the writer at `epoch` still owns the partition.
local function advance_partition(key, epoch, end_offset)
  if tonumber(redis.call('HGET', key, 'epoch')) ~= epoch then return 0 end
  local next_offset = tonumber(redis.call('HGET', key, 'next') or '0')
  if end_offset > next_offset then redis.call('HSET', key, 'next', end_offset) end
  return 1
end
