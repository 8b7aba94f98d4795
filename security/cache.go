package security

import (
	"hash/maphash"
	"sync"
	"time"
)

// tokenCache remembers access tokens whose signature and claims verified, so
// a client presenting the same token again skips the signature check. It is
// keyed by the exact token string; an entry is never used at or after the
// token's exp. Revocation is not cached: it is checked on every request.
type tokenCache struct {
	seed   maphash.Seed
	shards [16]cacheShard
	per    int
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*Claims
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed(), per: max(1, size/16)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*Claims)
	}
	return c
}

func (c *tokenCache) shard(raw string) *cacheShard {
	return &c.shards[maphash.String(c.seed, raw)%16]
}

func (c *tokenCache) get(raw string, now time.Time) (*Claims, bool) {
	if c == nil {
		return nil, false
	}
	s := c.shard(raw)
	s.mu.RLock()
	cl, ok := s.m[raw]
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !now.Before(cl.ExpiresAt.Time) || (cl.NotBefore != nil && now.Before(cl.NotBefore.Time)) {
		s.mu.Lock()
		delete(s.m, raw)
		s.mu.Unlock()
		return nil, false
	}
	return cl, true
}

func (c *tokenCache) put(raw string, cl *Claims) {
	if c == nil {
		return
	}
	s := c.shard(raw)
	s.mu.Lock()
	if len(s.m) >= c.per {
		// Evict an arbitrary entry; map iteration order is random enough
		// that a flood of distinct tokens cannot pin the good ones out.
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[raw] = cl
	s.mu.Unlock()
}
