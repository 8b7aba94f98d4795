package limits

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/specguard/specguard/internal/clientspan"
	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
)

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

// WithStoreObserver receives the duration and error of every call to the
// store, for metrics. It must be fast.
func WithStoreObserver(f func(d time.Duration, err error)) Option {
	return func(l *Limiter) { l.observe = f }
}

// WithTracerProvider traces every call to a remote store as a client span
// (named "ratelimit", with db.system.name system) under the request's
// span.
func WithTracerProvider(tp trace.TracerProvider, system string) Option {
	return func(l *Limiter) {
		if tp != nil {
			l.tracer, l.system = tp.Tracer("github.com/specguard/specguard/limits"), system
		}
	}
}

// Limiter applies operations' tiers to requests and says what it decided:
// it writes nothing.
type Limiter struct {
	store   Store
	ip      *ClientIP
	v6bits  int
	timeout time.Duration
	logErr  func(*policy.Operation, error)
	observe func(time.Duration, error)
	tracer  trace.Tracer // nil: no tracing
	system  string

	prechecked  allowPrechecked // nil: the store cannot take a precheck
	mem         *MemoryStore    // the store, when it is the memory store
	storeErrors atomic.Int64
	lastLog     atomic.Int64
	policies    sync.Map // *policy.Operation -> *policyCache
}

// New returns a limiter deciding with store.
func New(store Store, opts ...Option) *Limiter {
	l := &Limiter{store: store, ip: defaultClientIP, v6bits: 64, timeout: 100 * time.Millisecond}
	l.mem, _ = store.(*MemoryStore)
	for _, opt := range opts {
		opt(l)
	}
	if hook, ok := onetrip.PrecheckStore.(func(Store) allowPrechecked); ok {
		l.prechecked = hook(store)
	}
	return l
}

// StoreErrors is how many store calls failed since start.
func (l *Limiter) StoreErrors() int64 { return l.storeErrors.Load() }

// Caller is who a request comes from, as tiers count callers: verified
// identity, as plain values. The zero Caller is anonymous (a request whose
// authentication failed is one too).
type Caller struct {
	Authenticated bool
	Subject       string // the account
	KeyID         string // the API key behind the request (presented, or one a token was minted from), if any: key apikey
	SessionID     string // the browser session used, if any: key session
	// Claims answers claim:<name> keys; "" when the credential lacks the
	// claim (the tier then counts the request by client IP). May be nil.
	Claims interface{ Claim(name string) string }
	// Charged has bit i set when this request was charged to op.Limits[i]
	// already, as an anonymous caller, before its credential was verified
	// (the guard does so for a credential whose check calls out: see
	// guard.Outbound). A tier that counts the verified caller as it
	// counted the anonymous one (who: any, by client address or
	// globally) is not charged again.
	Charged uint64
}

// Verdict is what the limiter decided for one request. When Allowed is
// false, either tiers refused it (Denied != 0: a 429 after RetryAfter
// seconds) or StoreErr says the store did not answer and on-store-error
// denied (a 503).
type Verdict struct {
	Allowed bool
	// Applied and Denied have bit i set when op.Limits[i] applied to the
	// request, and when it refused it.
	Applied, Denied uint64
	// Charged has bit i set when op.Limits[i] was charged for the
	// request: every tier applied to a request allowed, none of one
	// refused, and with a store error only what a store decided (a Redis
	// Cluster with a node down) when on-store-error let the request on.
	Charged uint64
	// StoreErr is the store's failure, when it failed: the tiers it could
	// not decide were decided by their on-store-error.
	StoreErr error
	// RetryAfter is the seconds until a refused request may pass (>= 1).
	RetryAfter int64
	// Policy and Limit are the RateLimit-Policy and RateLimit header
	// values (draft-ietf-httpapi-ratelimit-headers-10); nil when no tier
	// applied or the store failed. Shared: never modify them.
	Policy, Limit []string
}

// Violated names the tiers of op that refused the request.
func (v *Verdict) Violated(op *policy.Operation) []string {
	var out []string
	for i := range op.Limits {
		if i < 64 && v.Denied&(1<<i) != 0 {
			out = append(out, op.Limits[i].Name)
		}
	}
	return out
}

// identify sets id to the caller as tier t counts callers, and returns
// false when the tier does not apply to this caller. It writes in place:
// an Identity is 64 bytes, and this runs for every tier of every request.
func (l *Limiter) identify(r *http.Request, t *policy.Tier, c *Caller, id *Identity) bool {
	switch t.Who {
	case policy.WhoAnonymous:
		if c.Authenticated {
			return false
		}
	case policy.WhoAuthenticated:
		if !c.Authenticated {
			return false
		}
	}
	*id = Identity{Kind: t.Key}
	switch t.Key {
	case policy.KeyIP:
		id.IP = l.clientKey(r)
		return true
	case policy.KeyPrincipal:
		id.Value = c.Subject
		if id.Value == "" && c.Authenticated {
			// A principal without a subject (an authenticator of the
			// app's that sets none) is counted by its client address,
			// never let through uncounted.
			*id = Identity{Kind: policy.KeyIP, IP: l.clientKey(r)}
			return true
		}
	case policy.KeyAPIKey:
		id.Value = c.KeyID
	case policy.KeySession:
		id.Value = c.SessionID
	case policy.KeyClaim:
		if c.Claims != nil {
			id.Name, id.Value = t.Claim, c.Claims.Claim(t.Claim)
		}
		if id.Value == "" {
			// A credential that lacks the claim (an API key where the tier
			// counts by a token's login, say) is counted by its client IP
			// under the same tier: never skipped.
			*id = Identity{Kind: policy.KeyIP, IP: l.clientKey(r)}
		}
		return true
	case policy.KeyGlobal:
		return true
	default:
		return false
	}
	// A caller without the credential the tier counts by (no API key, no
	// session) is not counted by it.
	return id.Value != ""
}

// ClientAddr is the client address of r as tiers keyed by IP count it: an
// IPv6 address as its network of the configured prefix (WithIPv6Prefix),
// an IPv4 address a translator wrote in the well-known prefix
// 64:ff9b::/96 as that IPv4 address. Budgets a handler keeps by client
// address should count by it too.
func (l *Limiter) ClientAddr(r *http.Request) netip.Addr { return l.clientKey(r) }

// translated is the well-known prefix of RFC 6052: an address in it is
// an IPv4 host as a NAT64 or SIIT translator presents it to an IPv6-only
// service, its IPv4 address in the low 32 bits. Counted per /64, every
// IPv4 client behind the translator would share one bucket.
var translated = netip.MustParsePrefix("64:ff9b::/96")

// clientKey is the client address of r as tiers keyed by IP count it: an
// IPv6 address as its network of v6bits bits, a translated IPv4 address
// as that address.
func (l *Limiter) clientKey(r *http.Request) netip.Addr {
	a := l.ip.Of(r)
	if translated.Contains(a) {
		b := a.As16()
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	if a.Is6() && l.v6bits < 128 {
		if p, err := a.Prefix(l.v6bits); err == nil {
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
	main, fallback tierSet
}

// tierSet is the tiers of an operation that apply to one caller, and
// what the store says of them.
type tierSet struct {
	reqs    [maxTiers]Request
	results [maxTiers]Result
	tiers   [maxTiers]*policy.Tier
	index   [maxTiers]int // tiers[k] is op.Limits[index[k]]
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func init() {
	onetrip.Decider = func(l *Limiter) (func(*http.Request, *policy.Operation, Caller, onetrip.Precheck, *onetrip.Field, time.Time, bool) (Verdict, error, bool), bool) {
		return l.decide, l.prechecked != nil
	}
}

// Decide charges every tier of op that applies to caller c and returns the
// verdict.
func (l *Limiter) Decide(r *http.Request, op *policy.Operation, c Caller) Verdict {
	v, _, _ := l.decide(r, op, c, nil, nil, time.Time{}, false)
	return v
}

// applying is the tiers of op that apply to caller c, as requests to the
// store, in ts; applied has bit i set when op.Limits[i] is one.
func (l *Limiter) applying(r *http.Request, op *policy.Operation, c *Caller, ts *tierSet) (reqs []Request, tiers []*policy.Tier, index []int, applied uint64) {
	reqs, tiers, index = ts.reqs[:0], ts.tiers[:0], ts.index[:0]
	for i := range op.Limits {
		t := &op.Limits[i]
		reqs = append(reqs, Request{})
		q := &reqs[len(reqs)-1]
		if !l.identify(r, t, c, &q.Who) || i < 64 && c.Charged&(1<<i) != 0 && t.Who == policy.WhoAny && (q.Who.Kind == policy.KeyIP || q.Who.Kind == policy.KeyGlobal) {
			reqs = reqs[:len(reqs)-1]
			continue
		}
		q.Bucket, q.Interval, q.Burst, q.Cost, q.TTL = t.Bucket, t.Interval(), t.Burst, t.Cost, t.Window
		q.AllowOnStoreError = t.AllowOnStoreError
		tiers = append(tiers, t)
		index = append(index, i)
		if i < 64 {
			applied |= 1 << i
		}
	}
	return reqs, tiers, index, applied
}

// resultsFor returns room for n zero results, in ts when it holds them:
// a store's error leaves them as they were, and the limiter reads what the
// store marked Undecided.
func resultsFor(ts *tierSet, n int) []Result {
	if n <= maxTiers {
		r := ts.results[:n]
		clear(r)
		return r
	}
	return make([]Result, n)
}

// decide is Decide with pre, when not nil, checked first, in the same store
// call when the store can (the guard's one round trip, see
// internal/onetrip): when it fails nothing is charged, and its error comes
// back with an allowed verdict (the guard refuses the request for it). With
// fallback, a store that finds pre's credential gone for good counts the
// request as an anonymous caller in that same call instead: anon says the
// verdict is that one (the guard, which refuses the credential, would
// otherwise decide again as anonymous). The RateLimit value is formatted
// into f (when f is nil or already used, into a Field of its own): v.Limit
// then refers to f, which must outlive it. at is the guard's reading of the
// clock for the request (see internal/clock), zero when there is none.
func (l *Limiter) decide(r *http.Request, op *policy.Operation, c Caller, pre onetrip.Precheck, f *onetrip.Field, at time.Time, fallback bool) (v Verdict, preErr error, anon bool) {
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	reqs, tiers, index, applied := l.applying(r, op, &c, &sc.main)
	v.Applied = applied
	ctx := r.Context()
	if l.mem == nil {
		// The store call is the server's, not the client's: a client that
		// goes away must not turn the decision into a store failure (which
		// a tier with on-store-error: allow would let through uncharged).
		// The request's deadline, the server's own, still bounds it.
		deadline, bounded := ctx.Deadline()
		ctx = context.WithoutCancel(ctx)
		if l.timeout > 0 && (!bounded || time.Until(deadline) > l.timeout) {
			deadline, bounded = time.Now().Add(l.timeout), true
		}
		if bounded {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
	}
	v.Allowed = true
	prechecked := pre != nil && l.prechecked != nil
	if len(reqs) == 0 && (!prechecked || !fallback || !c.Authenticated) {
		if pre != nil {
			preErr = pre.Check(ctx, at)
		}
		return v, preErr, false
	}
	results := resultsFor(&sc.main, len(reqs))

	var allowed bool
	var err error
	checked := false // pre was decided, and held, before err
	switch {
	case prechecked:
		// The fallback: the tiers that count the request as anonymous.
		var fb []Request
		var fbTiers []*policy.Tier
		var fbIndex []int
		var fbApplied uint64
		var fbResults []Result
		if fallback {
			if c.Authenticated {
				fb, fbTiers, fbIndex, fbApplied = l.applying(r, op, &Caller{}, &sc.fallback)
			} else {
				fb, fbTiers, fbIndex, fbApplied = reqs, tiers, index, applied
			}
			fbResults = resultsFor(&sc.fallback, len(fb))
		}
		if len(reqs) == 0 && len(fb) == 0 {
			// No tier applies to the caller, nor would as anonymous.
			return v, pre.Check(ctx, at), false
		}
		start := l.clock()
		sctx, span := clientspan.Start(ctx, l.tracer, "ratelimit", l.system, "ratelimit")
		var fellBack bool
		allowed, fellBack, preErr, err = l.prechecked(sctx, pre, reqs, results, fb, fbResults)
		clientspan.End(span, err != nil, "rate-limit store failed")
		l.observed(start, err)
		if err == nil && fellBack {
			v = Verdict{Applied: fbApplied}
			l.conclude(op, &v, fbTiers, fbIndex, fbResults, allowed, f)
			return v, preErr, true
		}
		if err == nil && preErr != nil {
			return v, preErr, false
		}
		if err == nil && len(reqs) == 0 {
			return v, nil, false // the check held; no tier applies to the caller
		}
	case pre != nil:
		if preErr = pre.Check(ctx, at); preErr != nil {
			return v, preErr, false
		}
		checked = true
		fallthrough
	default:
		start := l.clock()
		sctx, span := clientspan.Start(ctx, l.tracer, "ratelimit", l.system, "ratelimit")
		if l.mem != nil {
			allowed, err = l.mem.allowAt(reqs, results, at)
		} else {
			allowed, err = l.store.Allow(sctx, reqs, results)
		}
		clientspan.End(span, err != nil, "rate-limit store failed")
		l.observed(start, err)
	}
	if err != nil {
		var h *onetrip.HeldError
		if errors.As(err, &h) {
			checked, err = true, h.Err
		}
		l.countStoreError(op, err)
		v.StoreErr = err
		if pre != nil && !checked {
			// The credential could not be checked either: the security
			// rule (fail closed) decides, not on-store-error.
			return v, errors.Join(onetrip.ErrUndecided, err), false
		}
		// Only what the store could not decide: all of it, unless it
		// marked some buckets (a Cluster with a node down).
		partial := slices.ContainsFunc(results, func(r Result) bool { return r.Undecided })
		for k, t := range tiers {
			if !t.AllowOnStoreError && (!partial || results[k].Undecided) {
				v.Allowed = false
			}
		}
		if partial && v.Allowed {
			// The store kept what it decided (see Store).
			for k, i := range index {
				if !results[k].Undecided && i < 64 {
					v.Charged |= 1 << i
				}
			}
		}
		return v, nil, false
	}
	l.conclude(op, &v, tiers, index, results, allowed, f)
	return v, nil, false
}

// conclude completes v from the store's answer for tiers (op.Limits[index[k]]
// is tiers[k]), which allowed the request or not.
func (l *Limiter) conclude(op *policy.Operation, v *Verdict, tiers []*policy.Tier, index []int, results []Result, allowed bool, f *onetrip.Field) {
	if !allowed {
		// A bucket that admitted reports itself charged, but a refused
		// request charges none: report it as it stays.
		for k := range results {
			if res := &results[k]; res.Allowed {
				t := tiers[k]
				res.Remaining = min(res.Remaining+t.Cost, t.Burst)
				res.ResetAfter = max(res.ResetAfter-time.Duration(t.Interval()*t.Cost)*time.Microsecond, 0)
			}
		}
	}
	v.Policy = l.policyValue(op, v.Applied, tiers)
	v.Limit = limitValue(tiers, results, f)
	v.Allowed = allowed
	if allowed {
		v.Charged = v.Applied
	}
	if !allowed {
		for k, res := range results {
			if !res.Allowed {
				v.RetryAfter = max(v.RetryAfter, ceilSeconds(res.RetryAfter), 1)
				if i := index[k]; i < 64 {
					v.Denied |= 1 << i
				}
			}
		}
	}
}

// clock reads the time when a store observer wants it.
func (l *Limiter) clock() time.Time {
	if l.observe == nil {
		return time.Time{}
	}
	return time.Now()
}

func (l *Limiter) observed(start time.Time, err error) {
	if l.observe != nil {
		l.observe(time.Since(start), err)
	}
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
