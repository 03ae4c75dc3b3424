package limit

import "hash/maphash"

// SetMaxEntries caps k at n entries in total (n/shardCount a shard, at
// least one), for tests of the full-shard path.
func (k *Keyed[K]) SetMaxEntries(n int) {
	k.maxPerShard = max(n/shardCount, 1)
	for i := range k.shards {
		k.shards[i].sweepAt = min(k.shards[i].sweepAt, k.maxPerShard)
	}
}

// ShardOf returns key's shard index.
func (k *Keyed[K]) ShardOf(key K) int {
	return int(maphash.Comparable(k.seed, key) & (shardCount - 1))
}

// ShardCount is the number of shards.
const ShardCount = shardCount
