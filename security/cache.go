package security

import (
	"hash/maphash"
	"sync"
	"time"
)

// boundedCache maps strings to values, in 16 shards of at most per entries
// each; a full shard drops an arbitrary entry to make room. It holds only
// what may be forgotten at any time: verified tokens, immutable parts of
// sessions and keys, account state that every use re-asserts in the store.
type boundedCache[V any] struct {
	seed   maphash.Seed
	shards [16]cacheShard[V]
	per    int
}

type cacheShard[V any] struct {
	mu sync.RWMutex
	m  map[uint64]cacheEntry[V] // by the key's hash, computed once per lookup
}

type cacheEntry[V any] struct {
	key string
	v   V
}

func newBoundedCache[V any](size int) *boundedCache[V] {
	c := &boundedCache[V]{seed: maphash.MakeSeed(), per: max(1, size/16)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry[V])
	}
	return c
}

func (c *boundedCache[V]) get(key string) (v V, ok bool) {
	if c == nil {
		return v, false
	}
	h := maphash.String(c.seed, key)
	s := &c.shards[h%16]
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || e.key != key {
		return v, false
	}
	return e.v, true
}

func (c *boundedCache[V]) put(key string, v V) {
	if c == nil {
		return
	}
	h := maphash.String(c.seed, key)
	s := &c.shards[h%16]
	s.mu.Lock()
	if _, replacing := s.m[h]; !replacing && len(s.m) >= c.per {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[h] = cacheEntry[V]{key: key, v: v}
	s.mu.Unlock()
}

func (c *boundedCache[V]) del(key string) {
	if c == nil {
		return
	}
	h := maphash.String(c.seed, key)
	s := &c.shards[h%16]
	s.mu.Lock()
	if s.m[h].key == key {
		delete(s.m, h)
	}
	s.mu.Unlock()
}

// tokenCache remembers access tokens whose signature and claims verified, so
// a client presenting the same token again skips the signature check. It is
// keyed by the exact token string; an entry is never used at or after the
// token's exp. Revocation is not cached: it is checked on every request.
type tokenCache struct{ c *boundedCache[*Claims] }

func newTokenCache(size int) *tokenCache { return &tokenCache{c: newBoundedCache[*Claims](size)} }

func (t *tokenCache) get(raw string, now time.Time) (*Claims, bool) {
	if t == nil {
		return nil, false
	}
	cl, ok := t.c.get(raw)
	if !ok {
		return nil, false
	}
	if !now.Before(cl.ExpiresAt.Time) || (cl.NotBefore != nil && now.Before(cl.NotBefore.Time)) {
		t.c.del(raw)
		return nil, false
	}
	return cl, true
}

func (t *tokenCache) put(raw string, cl *Claims) {
	if t != nil {
		t.c.put(raw, cl)
	}
}
