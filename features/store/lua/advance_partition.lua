-- Redis Cluster, after a batch: move the partition's next past the batch (if still the owner).
-- KEYS: the partition's hash. ARGV: the writer's epoch, the batch's end offset there.
return advance_partition(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
