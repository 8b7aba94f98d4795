package limits

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// ProblemQuotaExceeded is the problem type of a 429 (draft-ietf-httpapi-ratelimit-headers).
const ProblemQuotaExceeded = "https://iana.org/assignments/http-problem-types#quota-exceeded"

// Option configures a Limiter.
type Option func(*Limiter)

// WithTimeout bounds every store call (100ms when absent), so a hung store
// never hangs a request.
func WithTimeout(d time.Duration) Option { return func(l *Limiter) { l.timeout = d } }

// defaultClientIP trusts no proxy: the client is the socket peer.
var defaultClientIP, _ = NewClientIP(nil, "")

// WithClientIP sets how the client address is found (the socket peer, with
// no trusted proxies, when absent).
func WithClientIP(c *ClientIP) Option { return func(l *Limiter) { l.ip = c } }

// WithIPv6Prefix sets how many leading bits of an IPv6 client address a
// tier keyed by IP counts by (64 when absent): one subscriber usually holds
// a whole /64, and would otherwise have 2^64 buckets. 128 counts each
// address apart.
func WithIPv6Prefix(bits int) Option { return func(l *Limiter) { l.v6bits = bits } }

// WithStoreErrorLog receives store failures. It is called at most once a
// second; the others are only counted (see StoreErrors).
func WithStoreErrorLog(f func(op *policy.Operation, err error)) Option {
	return func(l *Limiter) { l.logErr = f }
}

// Decision is what one tier decided for one request.
type Decision string

const (
	Allowed    Decision = "allowed"     // the tier admitted the request
	Limited    Decision = "limited"     // the tier refused it: 429
	StoreError Decision = "store_error" // the store failed; on-store-error decided
)

// WithDecisionObserver receives, for every tier applied to a request, what
// it decided, for metrics and logs; w is the ResponseWriter the limiter was
// given. It must be fast and must not keep w or r.
func WithDecisionObserver(f func(w http.ResponseWriter, r *http.Request, op *policy.Operation, t *policy.Tier, d Decision)) Option {
	return func(l *Limiter) { l.observe = f }
}

// Limiter applies operations' tiers to requests. It implements
// security.Limiter.
type Limiter struct {
	store   Store
	ip      *ClientIP
	v6bits  int
	timeout time.Duration
	logErr  func(*policy.Operation, error)
	observe func(http.ResponseWriter, *http.Request, *policy.Operation, *policy.Tier, Decision)

	storeErrors atomic.Int64
	lastLog     atomic.Int64
	policies    sync.Map // *policy.Operation -> *policyCache
}

var _ security.Limiter = (*Limiter)(nil)

// New returns a limiter deciding with store.
func New(store Store, opts ...Option) *Limiter {
	l := &Limiter{store: store, ip: defaultClientIP, v6bits: 64, timeout: 100 * time.Millisecond}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

// StoreErrors is how many store calls failed since start.
func (l *Limiter) StoreErrors() int64 { return l.storeErrors.Load() }

// identity returns the caller as tier t counts callers, and false when the
// tier does not apply to this caller.
func (l *Limiter) identity(r *http.Request, t *policy.Tier, p *security.Principal) (Identity, bool) {
	switch t.Who {
	case policy.WhoAnonymous:
		if p != nil {
			return Identity{}, false
		}
	case policy.WhoAuthenticated:
		if p == nil {
			return Identity{}, false
		}
	}
	id := Identity{Kind: t.Key}
	switch t.Key {
	case policy.KeyIP:
		id.IP = l.clientKey(r)
	case policy.KeyPrincipal:
		id.Value = p.Subject
	case policy.KeyAPIKey:
		id.Value = p.KeyID
	case policy.KeySession:
		id.Value = p.SessionID
	case policy.KeyClaim:
		id.Name, id.Value = t.Claim, p.Claim(t.Claim)
		if id.Value == "" {
			// A credential that lacks the claim (an API key where the tier
			// counts by a token's login, say) is counted by its client IP
			// under the same tier: never skipped.
			return Identity{Kind: policy.KeyIP, IP: l.clientKey(r)}, true
		}
	case policy.KeyGlobal:
		return id, true
	default:
		return Identity{}, false
	}
	// A principal without the credential the tier counts by (no API key,
	// no session) is not counted by it.
	return id, t.Key == policy.KeyIP || id.Value != ""
}

// ClientAddr is the client address of r as tiers keyed by IP count it: an
// IPv6 address as its network of the configured prefix (WithIPv6Prefix).
// Budgets a handler keeps by client address should count by it too.
func (l *Limiter) ClientAddr(r *http.Request) netip.Addr { return l.clientKey(r) }

// clientKey is the client address of r as tiers keyed by IP count it: an
// IPv6 address as its network of v6bits bits.
func (l *Limiter) clientKey(r *http.Request) netip.Addr {
	a := l.ip.Of(r)
	if a.Is6() && l.v6bits < 128 {
		if p, err := a.WithZone("").Prefix(l.v6bits); err == nil {
			return p.Addr()
		}
	}
	return a
}

// maxTiers is how many tiers of one operation a pooled scratch holds; an
// operation with more works, allocating.
const maxTiers = 8

// scratch is one call's working memory. The requests and results pass
// through the Store interface, so arrays on the stack would escape to the
// heap on every call: they are pooled instead.
type scratch struct {
	reqs     [maxTiers]Request
	results  [maxTiers]Result
	tiers    [maxTiers]*policy.Tier
	violated [maxTiers]string
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Limit implements security.Limiter: it charges every tier of op that
// applies to the caller (p is nil for anonymous callers and failed
// authentications), sets the RateLimit headers, and answers 429 or 503 when
// the request must not proceed.
func (l *Limiter) Limit(w http.ResponseWriter, r *http.Request, op *policy.Operation, p *security.Principal) bool {
	ok, _ := l.limit(w, r, op, p, nil)
	return ok
}

var _ security.GatedLimiter = (*Limiter)(nil)

// CanGate implements security.GatedLimiter: true when the store can carry a
// gate in its own call (Redis, not a Cluster).
func (l *Limiter) CanGate() bool {
	gs, ok := l.store.(GatedStore)
	return ok && gs.CanGate()
}

// LimitGated implements security.GatedLimiter.
func (l *Limiter) LimitGated(w http.ResponseWriter, r *http.Request, op *policy.Operation, p *security.Principal, gate *security.Gate) (bool, error) {
	return l.limit(w, r, op, p, gate)
}

// limit is Limit, with the gate of p's token checked in the same store call
// when gate is not nil; see security.GatedLimiter.
func (l *Limiter) limit(w http.ResponseWriter, r *http.Request, op *policy.Operation, p *security.Principal, gate *security.Gate) (bool, error) {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	reqs, tiers := sc.reqs[:0], sc.tiers[:0]
	var mask uint
	for i := range op.Limits {
		t := &op.Limits[i]
		id, ok := l.identity(r, t, p)
		if !ok {
			continue
		}
		reqs = append(reqs, Request{Bucket: t.Bucket, Who: id, Interval: t.Interval(), Burst: t.Burst, Cost: t.Cost, TTL: t.Window})
		tiers = append(tiers, t)
		mask |= 1 << i
	}
	ctx := r.Context()
	if _, local := l.store.(*MemoryStore); !local && l.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.timeout)
		defer cancel()
	}
	if len(reqs) == 0 {
		if gate != nil {
			return true, gate.Check(ctx)
		}
		return true, nil
	}
	var results []Result
	if len(reqs) <= maxTiers {
		results = sc.results[:len(reqs)]
	} else {
		results = make([]Result, len(reqs))
	}

	var allowed bool
	var err error
	if gate != nil {
		if gs, ok := l.store.(GatedStore); ok {
			var gateErr error
			allowed, gateErr, err = gs.AllowGated(ctx, gate, reqs, results)
			if err == nil && gateErr != nil {
				return true, gateErr
			}
		} else if err = gate.Check(ctx); err != nil {
			return true, err
		} else {
			allowed, err = l.store.Allow(ctx, reqs, results)
		}
	} else {
		allowed, err = l.store.Allow(ctx, reqs, results)
	}
	if err != nil {
		if l.observe != nil {
			for _, t := range tiers {
				l.observe(w, r, op, t, StoreError)
			}
		}
		if gate != nil {
			// The token's revocation could not be checked either: the
			// security rule (fail closed, 503) decides, not on-store-error.
			l.countStoreError(op, err)
			return true, fmt.Errorf("%w: %v", security.ErrUnavailable, err)
		}
		return l.storeFailed(w, op, tiers, err), nil
	}
	if l.observe != nil {
		for i, t := range tiers {
			d := Allowed
			if !results[i].Allowed {
				d = Limited
			}
			l.observe(w, r, op, t, d)
		}
	}

	h := w.Header()
	h[headerPolicy] = l.policyValue(op, mask, tiers)
	h[headerLimit] = limitValue(tiers, results)
	if allowed {
		return true, nil
	}
	var retry int64
	violated := sc.violated[:0]
	for i, t := range tiers {
		if !results[i].Allowed {
			retry = max(retry, ceilSeconds(results[i].RetryAfter), 1)
			violated = append(violated, t.Name)
		}
	}
	h.Set("Retry-After", strconv.FormatInt(retry, 10))
	security.WriteProblem(w, &security.Problem{
		Type:             ProblemQuotaExceeded,
		Title:            "Request cannot be satisfied as assigned quota has been exceeded",
		Status:           http.StatusTooManyRequests,
		Detail:           "Rate limit exceeded: " + joinNames(violated) + "; retry in " + strconv.FormatInt(retry, 10) + "s.",
		ViolatedPolicies: slices.Clone(violated),
	})
	return false, nil
}

// storeFailed applies on-store-error: the request passes only when every
// tier that applied allows it.
func (l *Limiter) storeFailed(w http.ResponseWriter, op *policy.Operation, tiers []*policy.Tier, err error) bool {
	l.countStoreError(op, err)
	for _, t := range tiers {
		if !t.AllowOnStoreError {
			w.Header().Set("Retry-After", "1")
			security.WriteProblem(w, &security.Problem{
				Type:   security.ProblemTypePrefix + "store-unavailable",
				Title:  "Service unavailable",
				Status: http.StatusServiceUnavailable,
				Detail: "The rate-limit store is unavailable; try again shortly.",
			})
			return false
		}
	}
	return true
}

// countStoreError counts a store failure and logs it, at most once a second.
func (l *Limiter) countStoreError(op *policy.Operation, err error) {
	l.storeErrors.Add(1)
	if l.logErr != nil {
		now := time.Now().Unix()
		if last := l.lastLog.Load(); now > last && l.lastLog.CompareAndSwap(last, now) {
			l.logErr(op, err)
		}
	}
}
