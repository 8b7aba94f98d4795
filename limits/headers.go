package limits

import (
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
)

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// appendPolicy writes one RateLimit-Policy item: "name";q=limit;w=window.
func appendPolicy(b []byte, t *policy.Tier) []byte {
	b = appendName(b, t.Name)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, t.Limit, 10)
	b = append(b, ";w="...)
	return strconv.AppendInt(b, int64(t.Window/time.Second), 10)
}

// appendLimit writes one RateLimit item: "name";r=remaining;t=seconds.
func appendLimit(b []byte, name string, remaining, t int64) []byte {
	b = appendName(b, name)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, max(remaining, 0), 10)
	b = append(b, ";t="...)
	return strconv.AppendInt(b, t, 10)
}

// policyCache holds an operation's RateLimit-Policy values, one per set of
// tiers that applied (a bit mask over op.Limits), built on first use. The
// values are shared by every response: never modify them.
type policyCache struct {
	byMask []atomic.Pointer[[]string]
}

// maxCachedTiers bounds the operations whose values are cached (2^n slots).
const maxCachedTiers = 6

func (l *Limiter) policyValue(op *policy.Operation, mask uint64, tiers []*policy.Tier) []string {
	if len(op.Limits) > maxCachedTiers {
		return []string{string(appendPolicies(nil, tiers))}
	}
	c, ok := l.policies.Load(op)
	if !ok {
		c, _ = l.policies.LoadOrStore(op, &policyCache{byMask: make([]atomic.Pointer[[]string], 1<<len(op.Limits))})
	}
	slot := &c.(*policyCache).byMask[mask]
	if v := slot.Load(); v != nil {
		return *v
	}
	v := []string{string(appendPolicies(nil, tiers))}
	slot.Store(&v)
	return v
}

func appendPolicies(b []byte, tiers []*policy.Tier) []byte {
	for i, t := range tiers {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPolicy(b, t)
	}
	return b
}

// limitValue formats the RateLimit field: per tier the remaining quota and
// the seconds until it is full again, or for a tier that refused, until it
// admits (never less than 1). It formats into f unless f is nil or holds a
// value already (whose string shares f's bytes, which must not change):
// Decide allocates one per verdict, the guard keeps one in the allocation
// it makes per request anyway.
func limitValue(tiers []*policy.Tier, results []Result, f *onetrip.Field) []string {
	if f == nil || f.V[0] != "" {
		f = new(onetrip.Field)
	}
	b := f.Buf[:0]
	for i, t := range tiers {
		res := &results[i]
		secs := ceilSeconds(res.ResetAfter)
		if !res.Allowed {
			secs = max(ceilSeconds(res.RetryAfter), 1)
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendLimit(b, t.Name, res.Remaining, secs)
	}
	if len(b) > 0 && len(b) <= len(f.Buf) && &b[0] == &f.Buf[0] {
		// b still lies in f.Buf, which nothing writes again: the string
		// may share it, as strings.Builder shares its buffer.
		f.V[0] = unsafe.String(&f.Buf[0], len(b))
	} else {
		f.V[0] = string(b)
	}
	return f.V[:]
}

// appendName appends a tier name as a Structured Field string. The compiler
// admits only letters, digits and "_.-", which need no escaping; anything
// else is quoted in full.
func appendName(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '"' || c == '\\' || c < 0x20 || c > 0x7e {
			return strconv.AppendQuote(b, name)
		}
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"')
}
