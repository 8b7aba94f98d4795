package limits

import (
	"strconv"
	"strings"
	"time"

	"github.com/specguard/specguard/policy"
)

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// appendPolicy writes one RateLimit-Policy item: "name";q=limit;w=window.
func appendPolicy(b []byte, t *policy.Tier) []byte {
	b = strconv.AppendQuote(b, t.Name)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, t.Limit, 10)
	b = append(b, ";w="...)
	return strconv.AppendInt(b, int64(t.Window/time.Second), 10)
}

// appendLimit writes one RateLimit item: "name";r=remaining;t=seconds.
func appendLimit(b []byte, name string, remaining, t int64) []byte {
	b = strconv.AppendQuote(b, name)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, max(remaining, 0), 10)
	b = append(b, ";t="...)
	return strconv.AppendInt(b, t, 10)
}

// policyHeader is the RateLimit-Policy value of an operation's tiers; it
// never changes, so it is computed once per operation.
func policyHeader(tiers []policy.Tier) string {
	var b []byte
	for i := range tiers {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPolicy(b, &tiers[i])
	}
	return string(b)
}

func joinNames(names []string) string { return strings.Join(names, ", ") }
