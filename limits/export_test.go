package limits

import (
	"net/http"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
)

// DecidePrechecked is the guard's private decision: pre checked first, in
// the same store call when the store can.
func DecidePrechecked(l *Limiter, r *http.Request, op *policy.Operation, c Caller, pre onetrip.Precheck) (Verdict, error) {
	v, err, _ := l.decide(r, op, c, pre, nil, time.Time{}, false)
	return v, err
}

// DecideWithFallback is DecidePrechecked where a store that finds pre's
// credential gone for good counts the request as anonymous in the same
// call (anon).
func DecideWithFallback(l *Limiter, r *http.Request, op *policy.Operation, c Caller, pre onetrip.Precheck) (v Verdict, err error, anon bool) {
	return l.decide(r, op, c, pre, nil, time.Time{}, true)
}

// CanPrecheck reports whether l's store takes a precheck in its own call.
func CanPrecheck(l *Limiter) bool {
	_, ok := onetrip.Decider.(func(*Limiter) (func(*http.Request, *policy.Operation, Caller, onetrip.Precheck, *onetrip.Field, time.Time, bool) (Verdict, error, bool), bool))
	return ok && l.prechecked != nil
}

// DecideInto decides an anonymous request with the RateLimit value
// formatted into f.
func DecideInto(l *Limiter, r *http.Request, op *policy.Operation, f *onetrip.Field) Verdict {
	v, _, _ := l.decide(r, op, Caller{}, nil, f, time.Time{}, false)
	return v
}
