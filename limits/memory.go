package limits

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/specguard/specguard/internal/clock"
)

const shards = 64

// MemoryStore keeps buckets in this process: 64 shards, each with its own
// lock and a map from the key's 64-bit hash to its tat. A bucket whose tat
// has passed is full, exactly as if absent, so each shard drops such
// entries during an occasional sweep; there is no goroutine per key.
type MemoryStore struct {
	clock  clock.Clock
	seed   maphash.Seed
	ops    atomic.Uint64
	shards [shards]memShard
}

type memShard struct {
	mu sync.Mutex
	m  map[uint64]int64
}

// sweepEvery is how many calls pass between two shard sweeps; the sweeps
// visit the shards in turn, so a full pass takes 64*sweepEvery calls.
const sweepEvery = 4096

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store; now is its clock (time.Now when
// nil: a guarded request's decision then takes the guard's one reading of
// the clock for the request rather than read it again).
func NewMemoryStore(now func() time.Time) *MemoryStore {
	s := &MemoryStore{clock: clock.New(now), seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]int64)
	}
	return s
}

// Allow implements Store.
func (s *MemoryStore) Allow(_ context.Context, reqs []Request, results []Result) (bool, error) {
	return s.allowAt(reqs, results, time.Time{})
}

// allowAt is Allow at the guard's reading of the clock at (see
// internal/clock; zero when there is none).
func (s *MemoryStore) allowAt(reqs []Request, results []Result, at time.Time) (bool, error) {
	var hashes [8]uint64
	var idx [8]uint8
	h := hashes[:0]
	order := idx[:0]
	for i := range reqs {
		h = append(h, reqs[i].hash(s.seed))
		order = append(order, uint8(h[i]%shards))
	}
	// Lock each shard involved once, in ascending order, so concurrent
	// multi-tier calls cannot deadlock and the decision is atomic.
	var lk [8]uint8
	locked := append(lk[:0], order...)
	slices.Sort(locked)
	locked = slices.Compact(locked)
	for _, sh := range locked {
		s.shards[sh].mu.Lock()
	}
	now := s.clock.At(at).UnixMicro()
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
		s.shards[sh].mu.Unlock()
	}
	if n := s.ops.Add(1); n%sweepEvery == 0 {
		s.sweep(int((n/sweepEvery)%shards), now)
	}
	return allowed, nil
}

// sweep deletes the full buckets of one shard: a bucket whose tat has
// passed admits exactly as an absent one would.
func (s *MemoryStore) sweep(i int, now int64) {
	sh := &s.shards[i]
	sh.mu.Lock()
	for k, tat := range sh.m {
		if tat <= now {
			delete(sh.m, k)
		}
	}
	sh.mu.Unlock()
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
