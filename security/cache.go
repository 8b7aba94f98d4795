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
	m  map[uint64]cacheEntry // by the token's hash, computed once per lookup
}

type cacheEntry struct {
	raw    string
	claims *Claims
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed(), per: max(1, size/16)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry)
	}
	return c
}

func (c *tokenCache) get(raw string, now time.Time) (*Claims, bool) {
	if c == nil {
		return nil, false
	}
	h := maphash.String(c.seed, raw)
	s := &c.shards[h%16]
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || e.raw != raw {
		return nil, false
	}
	cl := e.claims
	if !now.Before(cl.ExpiresAt.Time) || (cl.NotBefore != nil && now.Before(cl.NotBefore.Time)) {
		s.mu.Lock()
		if s.m[h].raw == raw {
			delete(s.m, h)
		}
		s.mu.Unlock()
		return nil, false
	}
	return cl, true
}

func (c *tokenCache) put(raw string, cl *Claims) {
	if c == nil {
		return
	}
	h := maphash.String(c.seed, raw)
	s := &c.shards[h%16]
	s.mu.Lock()
	if _, replacing := s.m[h]; !replacing && len(s.m) >= c.per {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[h] = cacheEntry{raw: raw, claims: cl}
	s.mu.Unlock()
}
