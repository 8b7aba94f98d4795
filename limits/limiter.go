package limits

import (
	"context"
	"net/http"
	"strconv"
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

// WithClientIP sets how the client address is found (the socket peer, with
// no trusted proxies, when absent).
func WithClientIP(c *ClientIP) Option { return func(l *Limiter) { l.ip = c } }

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
// it decided, for metrics and logs. It must be fast and must not keep r.
func WithDecisionObserver(f func(r *http.Request, op *policy.Operation, t *policy.Tier, d Decision)) Option {
	return func(l *Limiter) { l.observe = f }
}

// Limiter applies operations' tiers to requests. It implements
// security.Limiter.
type Limiter struct {
	store   Store
	ip      *ClientIP
	timeout time.Duration
	logErr  func(*policy.Operation, error)
	observe func(*http.Request, *policy.Operation, *policy.Tier, Decision)

	storeErrors atomic.Int64
	lastLog     atomic.Int64
}

var _ security.Limiter = (*Limiter)(nil)

// New returns a limiter deciding with store.
func New(store Store, opts ...Option) *Limiter {
	l := &Limiter{store: store, ip: &ClientIP{}, timeout: 100 * time.Millisecond}
	for _, opt := range opts {
		opt(l)
	}
	return l
}

// StoreErrors is how many store calls failed since start.
func (l *Limiter) StoreErrors() int64 { return l.storeErrors.Load() }

// identity returns the caller's identity for tier t, or "" when the tier
// does not apply to this caller.
func (l *Limiter) identity(r *http.Request, t *policy.Tier, p *security.Principal) string {
	switch t.Who {
	case policy.WhoAnonymous:
		if p != nil {
			return ""
		}
	case policy.WhoAuthenticated:
		if p == nil {
			return ""
		}
	}
	switch t.Key {
	case policy.KeyIP:
		a := l.ip.Of(r)
		if !a.IsValid() {
			return "ip:unknown"
		}
		return "ip:" + a.String()
	case policy.KeyPrincipal:
		return "sub:" + p.Subject
	case policy.KeyAPIKey:
		if p.KeyID == "" {
			return ""
		}
		return "key:" + p.KeyID
	case policy.KeySession:
		if p.SessionID == "" {
			return ""
		}
		return "ses:" + p.SessionID
	case policy.KeyClaim:
		if v := p.Claim(t.Claim); v != "" {
			return "claim:" + t.Claim + ":" + v
		}
		return ""
	case policy.KeyGlobal:
		return "global"
	}
	return ""
}

// Limit implements security.Limiter: it charges every tier of op that
// applies to the caller (p is nil for anonymous callers and failed
// authentications), sets the RateLimit headers, and answers 429 or 503 when
// the request must not proceed.
func (l *Limiter) Limit(w http.ResponseWriter, r *http.Request, op *policy.Operation, p *security.Principal) bool {
	var reqBuf [4]Request
	var tierBuf [4]*policy.Tier
	reqs, tiers := reqBuf[:0], tierBuf[:0]
	for i := range op.Limits {
		t := &op.Limits[i]
		id := l.identity(r, t, p)
		if id == "" {
			continue
		}
		reqs = append(reqs, Request{Key: t.Bucket + "|" + id, Interval: t.Interval(), Burst: t.Burst, Cost: t.Cost, TTL: t.Window})
		tiers = append(tiers, t)
	}
	if len(reqs) == 0 {
		return true
	}
	var resBuf [4]Result
	results := resBuf[:0]
	for range reqs {
		results = append(results, Result{})
	}

	ctx := r.Context()
	if _, local := l.store.(*MemoryStore); !local && l.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.timeout)
		defer cancel()
	}
	allowed, err := l.store.Allow(ctx, reqs, results)
	if err != nil {
		if l.observe != nil {
			for _, t := range tiers {
				l.observe(r, op, t, StoreError)
			}
		}
		return l.storeFailed(w, op, tiers, err)
	}
	if l.observe != nil {
		for i, t := range tiers {
			d := Allowed
			if !results[i].Allowed {
				d = Limited
			}
			l.observe(r, op, t, d)
		}
	}

	var pol, lim []byte
	var retry int64
	var violated []string
	for i, t := range tiers {
		res := &results[i]
		if i > 0 {
			pol = append(pol, ", "...)
			lim = append(lim, ", "...)
		}
		pol = appendPolicy(pol, t)
		secs := ceilSeconds(res.ResetAfter)
		if !res.Allowed {
			secs = max(ceilSeconds(res.RetryAfter), 1)
			retry = max(retry, secs)
			violated = append(violated, t.Name)
		}
		lim = appendLimit(lim, t.Name, res.Remaining, secs)
	}
	h := w.Header()
	h.Set("RateLimit-Policy", string(pol))
	h.Set("RateLimit", string(lim))
	if allowed {
		return true
	}
	h.Set("Retry-After", strconv.FormatInt(retry, 10))
	security.WriteProblem(w, &security.Problem{
		Type:             ProblemQuotaExceeded,
		Title:            "Request cannot be satisfied as assigned quota has been exceeded",
		Status:           http.StatusTooManyRequests,
		Detail:           "Rate limit exceeded: " + joinNames(violated) + "; retry in " + strconv.FormatInt(retry, 10) + "s.",
		ViolatedPolicies: violated,
	})
	return false
}

// storeFailed applies on-store-error: the request passes only when every
// tier that applied allows it.
func (l *Limiter) storeFailed(w http.ResponseWriter, op *policy.Operation, tiers []*policy.Tier, err error) bool {
	l.storeErrors.Add(1)
	if l.logErr != nil {
		now := time.Now().Unix()
		if last := l.lastLog.Load(); now > last && l.lastLog.CompareAndSwap(last, now) {
			l.logErr(op, err)
		}
	}
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
