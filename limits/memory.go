package limits

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"
)

const shards = 64

// MemoryStore keeps buckets in this process: 64 shards, each with its own
// lock and a map from the key's 64-bit hash to its tat. A bucket whose tat
// has passed is full, exactly as if absent, so each shard drops such
// entries during an occasional sweep; there is no goroutine per key.
type MemoryStore struct {
	now    func() time.Time
	seed   maphash.Seed
	shards [shards]memShard
}

type memShard struct {
	mu  sync.Mutex
	m   map[uint64]int64
	ops int
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store; now is its clock (time.Now when nil).
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	s := &MemoryStore{now: now, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]int64)
	}
	return s
}

// Allow implements Store.
func (s *MemoryStore) Allow(_ context.Context, reqs []Request, results []Result) (bool, error) {
	var hashes [8]uint64
	var idx [8]uint8
	h := hashes[:0]
	order := idx[:0]
	for i := range reqs {
		h = append(h, maphash.String(s.seed, reqs[i].Key))
		order = append(order, uint8(h[i]%shards))
	}
	// Lock each shard involved once, in ascending order, so concurrent
	// multi-tier calls cannot deadlock and the decision is atomic.
	locked := slices.Clone(order)
	slices.Sort(locked)
	locked = slices.Compact(locked)
	for _, sh := range locked {
		s.shards[sh].mu.Lock()
	}
	now := s.now().UnixMicro()
	allowed := true
	var tats [8]int64
	newTATs := tats[:0]
	for i := range reqs {
		sh := &s.shards[order[i]]
		newTATs = append(newTATs, gcra(sh.m[h[i]], now, &reqs[i], &results[i]))
		allowed = allowed && results[i].Allowed
	}
	if allowed {
		for i := range reqs {
			s.shards[order[i]].m[h[i]] = newTATs[i]
		}
	}
	for _, sh := range locked {
		s.shards[sh].sweep(now)
		s.shards[sh].mu.Unlock()
	}
	return allowed, nil
}

// sweep deletes full buckets every 4096 operations on the shard. Callers hold mu.
func (sh *memShard) sweep(now int64) {
	sh.ops++
	if sh.ops&4095 != 0 {
		return
	}
	for k, tat := range sh.m {
		if tat <= now {
			delete(sh.m, k)
		}
	}
}

// Len returns the number of buckets held (for tests and metrics).
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		s.shards[i].mu.Lock()
		n += len(s.shards[i].m)
		s.shards[i].mu.Unlock()
	}
	return n
}
