-- Redis Cluster, before a batch: 1 when the writer owns the partition, else 0 (fenced).
-- KEYS: the partition's hash. ARGV: the writer's epoch.
return owns_partition(KEYS[1], tonumber(ARGV[1])) and 1 or 0
