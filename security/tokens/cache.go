package tokens

import (
	"time"

	"github.com/specguard/specguard/security/internal/cache"
)

// tokenCache remembers access tokens whose signature and claims verified, so
// a client presenting the same token again skips the signature check. It is
// keyed by the exact token string; an entry is never used at or after the
// token's exp. Revocation is not cached: it is checked on every request.
// Only a verified token is put, so a key's last 32 bytes are signature
// bytes, which is all the cache hashes.
type tokenCache struct{ c *cache.Bounded[*Claims] }

func newTokenCache(size int) *tokenCache {
	return &tokenCache{c: cache.NewTail[*Claims](size, 32)}
}

func (t *tokenCache) get(raw string, now time.Time) (*Claims, bool) {
	if t == nil {
		return nil, false
	}
	cl, ok := t.c.Get(raw)
	if !ok {
		return nil, false
	}
	if !now.Before(cl.ExpiresAt.Time) || (cl.NotBefore != nil && now.Before(cl.NotBefore.Time)) {
		t.c.Del(raw)
		return nil, false
	}
	return cl, true
}

func (t *tokenCache) put(raw string, cl *Claims) {
	if t != nil {
		t.c.Put(raw, cl)
	}
}
