// Package limits enforces the x-rate-limit tiers of compiled operations with
// GCRA (the generic cell rate algorithm) in integer nanoseconds, identical in
// the memory and Redis stores, and writes RateLimit headers
// (draft-ietf-httpapi-ratelimit-headers-10).
package limits

import (
	"context"
	"errors"
	"time"
)

// ErrStore wraps every failure to reach a store.
var ErrStore = errors.New("rate-limit store unavailable")

// Request asks one bucket to admit a request. The limit travels with every
// call, so one store serves every operation.
type Request struct {
	Key      string // the bucket and the caller's identity
	Interval int64  // emission interval in microseconds: window / limit
	Burst    int64  // requests admitted at once
	Cost     int64  // units this request takes
	TTL      time.Duration
}

// Result is one bucket's answer.
type Result struct {
	Allowed    bool
	Remaining  int64         // requests that could still pass now
	RetryAfter time.Duration // when denied: wait this long
	ResetAfter time.Duration // until the bucket is full again
}

// Store decides a set of requests atomically: either every bucket admits
// and all are charged, or none is charged. results has len(reqs).
type Store interface {
	Allow(ctx context.Context, reqs []Request, results []Result) (allowed bool, err error)
}

// gcra is the whole algorithm. tat is the bucket's theoretical arrival time
// (0 for a new bucket); all values are microseconds. It returns the new
// tat to store when allowed. The Redis script is a line-for-line copy.
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
