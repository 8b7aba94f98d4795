package limits

import (
	"context"
	"errors"
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
)

// ErrStore wraps every failure to reach a store.
var ErrStore = errors.New("rate-limit store unavailable")

// Request asks one bucket to admit a request. The limit travels with every
// call, so one store serves every operation.
type Request struct {
	Bucket   string   // the tier's counter (policy.Tier.Bucket)
	Who      Identity // the caller, as the tier counts callers; zero: the bucket alone
	Interval int64    // emission interval in microseconds: window / limit
	Burst    int64    // requests admitted at once
	Cost     int64    // units this request takes
	TTL      time.Duration
	// AllowOnStoreError is the tier's on-store-error: the request may go
	// on when the store cannot decide this bucket (policy.Tier).
	AllowOnStoreError bool
}

// Identity is a caller as one tier counts it. Its parts are kept apart so
// the memory store can hash them without building a key string.
type Identity struct {
	Kind  policy.KeyKind // 0 when the bucket alone is the key
	IP    netip.Addr     // KeyIP; invalid when the address is unknown
	Name  string         // the claim name, for KeyClaim
	Value string         // subject, API key id, session id or claim value
}

// Key returns the request's key: "<bucket>|<identity>", the identity being
// "ip:<addr>", "sub:<subject>", "key:<id>", "ses:<id>", "claim:<name>:<value>"
// or "global". Remote stores address buckets by it.
func (r *Request) Key() string {
	w := &r.Who
	switch w.Kind {
	case policy.KeyIP:
		if !w.IP.IsValid() {
			return r.Bucket + "|ip:unknown"
		}
		return r.Bucket + "|ip:" + w.IP.String()
	case policy.KeyPrincipal:
		return r.Bucket + "|sub:" + w.Value
	case policy.KeyAPIKey:
		return r.Bucket + "|key:" + w.Value
	case policy.KeySession:
		return r.Bucket + "|ses:" + w.Value
	case policy.KeyClaim:
		return r.Bucket + "|claim:" + w.Name + ":" + w.Value
	case policy.KeyGlobal:
		return r.Bucket + "|global"
	}
	return r.Bucket
}

// hash returns the 64-bit hash of the request's key under seed, computed
// from its parts without allocating. Distinct keys get distinct inputs: the
// kind is written after a separator the bucket cannot contain.
func (r *Request) hash(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(r.Bucket)
	w := &r.Who
	h.WriteByte(0)
	h.WriteByte(byte(w.Kind))
	switch w.Kind {
	case policy.KeyIP:
		if w.IP.IsValid() {
			b := w.IP.As16()
			h.Write(b[:])
		}
	case policy.KeyClaim:
		h.WriteString(w.Name)
		h.WriteByte(0)
		h.WriteString(w.Value)
	default:
		h.WriteString(w.Value)
	}
	return h.Sum64()
}

// Result is one bucket's answer.
type Result struct {
	Allowed    bool
	Remaining  int64         // requests that could still pass now
	RetryAfter time.Duration // when denied: wait this long
	ResetAfter time.Duration // until the bucket is full again
	// Undecided marks, beside Allow's error, a bucket the store could
	// not reach while it decided others (a Redis Cluster with a node
	// down): only the on-store-error of such buckets decides then.
	Undecided bool
}

// Store decides a set of requests atomically: either every bucket admits
// and all are charged, or none is charged. results has len(reqs). A
// bucket that admits reports itself charged (as gcra does), even when
// another refuses and nothing is: the limiter then reports it as it stays.
//
// A store that cannot decide every bucket returns an error. When it could
// decide some of them (each bucket on its own node), a refusal among
// those still refuses (no error, nothing charged); otherwise it marks the
// others Undecided and returns the error, keeping what the decided
// buckets charged when every undecided one has AllowOnStoreError (the
// request goes on, and is counted where it can be), and charging nothing
// otherwise.
type Store interface {
	Allow(ctx context.Context, reqs []Request, results []Result) (allowed bool, err error)
}

// allowPrechecked is Allow preceded by a precheck (a credential's
// liveness, see internal/onetrip), atomically on one Redis (alongside,
// with a refund, on a Cluster): when pre fails nothing is charged and
// preErr says why; err reports a store that could not answer either
// question. When pre finds the credential gone for good, a store that can
// decides the fallback fb (the request counted as anonymous) in the same
// call, into fbResults, and says so with fellBack; allowed is then fb's. fb
// is reqs itself when the caller is anonymous already.
// The Redis store (limits/redislimit) has one.
type allowPrechecked = func(ctx context.Context, pre onetrip.Precheck, reqs []Request, results []Result, fb []Request, fbResults []Result) (allowed, fellBack bool, preErr, err error)

// gcra is the whole algorithm. tat is the bucket's theoretical arrival time
// (0 for a new bucket); all values are microseconds. It returns the new
// tat to store when allowed. The Redis script (limits/redislimit) is a line-for-line copy.
func gcra(tat, now int64, r *Request, res *Result) int64 {
	if tat < now {
		tat = now
	}
	interval := max(r.Interval, 1) // the compiler guarantees >= 1µs; never divide by zero
	tolerance := interval * r.Burst
	newTAT := tat + interval*r.Cost
	allowAt := newTAT - tolerance
	if now < allowAt {
		res.Allowed = false
		res.RetryAfter = time.Duration(allowAt-now) * time.Microsecond
		res.ResetAfter = time.Duration(tat-now) * time.Microsecond
		res.Remaining = (tolerance - (tat - now)) / interval
		return tat
	}
	res.Allowed = true
	res.RetryAfter = 0
	res.ResetAfter = time.Duration(newTAT-now) * time.Microsecond
	res.Remaining = (tolerance - (newTAT - now)) / interval
	return newTAT
}
