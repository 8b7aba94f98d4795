package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

var tierFields = map[string]bool{
	"name": true, "limit": true, "window": true, "burst": true, "key": true,
	"who": true, "cost": true, "shared": true, "on-store-error": true,
}

// parseLimits reads an x-rate-limit value: false (unlimited), one tier, or a
// list of tiers; at[i] is the index of tiers[i] in the document's list, for
// errors (a tier refused here leaves a gap). present is false when ext has
// no x-rate-limit.
// MaxTiers is the most tiers one x-rate-limit may list: a verdict names
// the tiers that refused a request in 64 bits.
const MaxTiers = 64

func (c *compiler) parseLimits(line int, where string, ext map[string]any) (tiers []Tier, at []int, unlimited, present bool) {
	raw, present := ext[ExtRateLimit]
	if !present {
		return nil, nil, false, false
	}
	var items []any
	switch v := raw.(type) {
	case bool:
		if v {
			c.fail(line, where, ExtRateLimit, "true is not a limit; give a tier, a list of tiers, or false for unlimited")
		}
		return nil, nil, !v, true
	case map[string]any:
		items = []any{v}
	case []any:
		if len(v) == 0 {
			c.fail(line, where, ExtRateLimit, "empty list; give at least one tier, or false for unlimited")
			return nil, nil, false, true
		}
		if len(v) > MaxTiers {
			c.fail(line, where, ExtRateLimit, "%d tiers; at most %d per operation", len(v), MaxTiers)
			return nil, nil, false, true
		}
		items = v
	default:
		c.fail(line, where, ExtRateLimit, "must be a tier, a list of tiers, or false")
		return nil, nil, false, true
	}
	seen := map[string]bool{}
	for i, item := range items {
		field := fmt.Sprintf("%s[%d]", ExtRateLimit, i)
		m, ok := item.(map[string]any)
		if !ok {
			c.fail(line, where, field, "a tier must be a mapping")
			continue
		}
		t, ok := c.parseTier(line, where, field, m)
		if !ok {
			continue
		}
		if seen[t.Name] {
			c.fail(line, where, field+".name", "duplicate tier name %q", t.Name)
			continue
		}
		seen[t.Name] = true
		// A store reads a bucket once per request: two tiers charging it
		// would charge it once.
		if j := slices.IndexFunc(tiers, func(o Tier) bool { return t.Bucket != "" && o.Bucket == t.Bucket }); j >= 0 {
			c.fail(line, where, field+".shared", "bucket %q is charged by tier %s of this list already; a request charges a bucket once (give one tier the cost of both)",
				strings.TrimPrefix(t.Bucket, "shared:"), tiers[j].Name)
			continue
		}
		tiers, at = append(tiers, t), append(at, i)
	}
	return tiers, at, false, true
}

// yearMicros is a year in microseconds; maxTolerance, the most a tier's
// full burst may take to earn back (window × burst / limit), keeps every
// time a store computes, now included, below 2^53 microseconds.
const (
	yearMicros   = int64(365.25 * 24 * 3600 * 1e6)
	maxTolerance = 100 * yearMicros
)

func (c *compiler) parseTier(line int, where, field string, m map[string]any) (Tier, bool) {
	ok := true
	bad := func(f, format string, args ...any) {
		c.fail(line, where, field+"."+f, format, args...)
		ok = false
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !tierFields[k] {
			bad(k, "unknown field (known: burst, cost, key, limit, name, on-store-error, shared, who, window)")
		}
	}
	t := Tier{Who: WhoAny, Cost: 1}

	name, isStr := m["name"].(string)
	switch {
	case m["name"] == nil:
		bad("name", "missing")
	case !isStr || !validName.MatchString(name):
		bad("name", "must be 1-64 letters, digits, '_', '.' or '-', not %v", m["name"])
	default:
		t.Name = name
	}

	if limit, err := positiveInt(m["limit"]); err != nil {
		bad("limit", "%v", err)
	} else {
		t.Limit = limit
	}

	switch w := m["window"].(type) {
	case nil:
		bad("window", "missing")
	case string:
		d, err := time.ParseDuration(w)
		switch {
		case err != nil:
			bad("window", "%q is not a Go duration such as 1m or 15m", w)
		case d < time.Second:
			bad("window", "%s is below the 1s minimum", w)
		case d%time.Second != 0:
			// The RateLimit-Policy field gives it in whole seconds (w=).
			bad("window", "%s is not a whole number of seconds", w)
		default:
			t.Window = d
		}
	default:
		bad("window", "must be a Go duration string such as 1m, not %v", w)
	}

	t.Burst = t.Limit
	if v, present := m["burst"]; present {
		if burst, err := positiveInt(v); err != nil {
			bad("burst", "%v", err)
		} else {
			t.Burst = burst
		}
	}
	if v, present := m["cost"]; present {
		if cost, err := positiveInt(v); err != nil {
			bad("cost", "%v", err)
		} else {
			t.Cost = cost
		}
	}
	if ok && t.Cost > t.Burst {
		bad("cost", "%d exceeds burst %d, so no request could ever pass", t.Cost, t.Burst)
	}
	if ok && int64(t.Window)/t.Limit < int64(time.Microsecond) {
		bad("limit", "%d per %s is finer than one request per microsecond", t.Limit, t.Window)
	} else if ok {
		// Both stores count in whole microseconds (Interval), and Redis in
		// doubles, exact below 2^53.
		us := t.Window.Microseconds()
		interval := us / t.Limit
		if off := us - interval*t.Limit; off*100 > interval*t.Limit {
			bad("limit", "%d per %s would be kept as %d per %s: the stores count one request per whole microsecond (%dµs here); choose a limit that divides %s more evenly",
				t.Limit, t.Window, us/interval, t.Window, interval, t.Window)
		} else if t.Burst > maxTolerance/interval {
			f := "window"
			if _, present := m["burst"]; present {
				f = "burst"
			}
			bad(f, "a full burst (window × burst / limit) takes %.1f years to earn back; the stores count at most 100 years",
				float64(interval)*float64(t.Burst)/float64(yearMicros))
		}
	}

	switch k := m["key"].(type) {
	case nil:
		bad("key", "missing (ip, principal, apikey, session, claim:<name> or global)")
	case string:
		switch {
		case k == "ip":
			t.Key = KeyIP
		case k == "principal":
			t.Key = KeyPrincipal
		case k == "apikey":
			t.Key = KeyAPIKey
		case k == "session":
			t.Key = KeySession
		case k == "global":
			t.Key = KeyGlobal
		case strings.HasPrefix(k, "claim:") && validName.MatchString(k[len("claim:"):]):
			// Which credentials carry the claim is their authenticators'
			// to say: the guard refuses a tier no accepted one carries.
			t.Key, t.Claim = KeyClaim, k[len("claim:"):]
		default:
			bad("key", "%q is not ip, principal, apikey, session, claim:<name> or global", k)
		}
	default:
		bad("key", "must be a string, not %v", k)
	}

	switch w := m["who"].(type) {
	case nil:
	case string:
		switch w {
		case "any":
			t.Who = WhoAny
		case "anonymous":
			t.Who = WhoAnonymous
		case "authenticated":
			t.Who = WhoAuthenticated
		default:
			bad("who", "%q is not anonymous, authenticated or any", w)
		}
	default:
		bad("who", "must be a string, not %v", w)
	}
	if t.Key != KeyIP && t.Key != KeyGlobal && t.Key != 0 && t.Who != WhoAuthenticated {
		bad("who", "key %s needs who: authenticated; anonymous callers have no verified identity", keyString(t))
	}

	switch s := m["shared"].(type) {
	case nil:
	case string:
		if !validName.MatchString(s) {
			bad("shared", "must be 1-64 letters, digits, '_', '.' or '-', not %q", s)
		} else {
			t.Bucket = "shared:" + s
		}
	default:
		bad("shared", "must be a string, not %v", s)
	}

	switch e := m["on-store-error"].(type) {
	case nil:
	case string:
		switch e {
		case "allow":
			t.AllowOnStoreError = true
		case "deny":
		default:
			bad("on-store-error", "%q is not allow or deny", e)
		}
	default:
		bad("on-store-error", "must be allow or deny, not %v", e)
	}
	return t, ok
}

func keyString(t Tier) string {
	if t.Key == KeyClaim {
		return "claim:" + t.Claim
	}
	return t.Key.String()
}

// positiveInt accepts the integer forms a YAML or JSON decoder produces.
func positiveInt(v any) (int64, error) {
	var n int64
	switch x := v.(type) {
	case nil:
		return 0, fmt.Errorf("missing")
	case int:
		n = int64(x)
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", x)
		}
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || x > math.MaxInt64/2 || x < math.MinInt64/2 {
			return 0, fmt.Errorf("must be a whole number, not %v", x)
		}
		n = int64(x)
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return 0, fmt.Errorf("must be a whole number, not %v", x)
		}
		n = i
	case string:
		if _, err := strconv.ParseInt(x, 10, 64); err == nil {
			return 0, fmt.Errorf("must be a whole number, not the string %q (write it without quotes)", x)
		}
		return 0, fmt.Errorf("must be a whole number, not %v", x)
	default:
		return 0, fmt.Errorf("must be a whole number, not %v", x)
	}
	if n <= 0 {
		return 0, fmt.Errorf("must be greater than 0, not %d", n)
	}
	return n, nil
}

// bindLimits fits parsed tiers to one operation (at: where each is in the
// document's list, as parseLimits says): it names each tier's bucket, and
// rejects tiers that could never apply. Tiers inherited from the document
// default that cannot apply (an authenticated tier on a public operation)
// are dropped silently, since the default is written for all.
func (c *compiler) bindLimits(op *Operation, where, field string, tiers []Tier, at []int, inherited bool) []Tier {
	out := make([]Tier, 0, len(tiers))
	hasScheme := func(accepts func(SchemeType) bool) bool {
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				if accepts(sr.Scheme.Type) {
					return true
				}
			}
		}
		return false
	}
	is := func(typ SchemeType) func(SchemeType) bool { return func(t SchemeType) bool { return t == typ } }
	// An API key, or a bearer token minted from one (the client_credentials
	// grant): the limiter counts either by the key.
	carriesKey := func(t SchemeType) bool { return t == SchemeAPIKeyHeader || t == SchemeBearer || t == SchemeOAuth2 }
	// Whether a tier applies is told by the alternatives; when every one
	// failed to compile, their errors say what is wrong.
	failed := !op.Security.Public && !op.Security.Anonymous && len(op.Security.Alternatives) == 0
	for i, t := range tiers {
		f := fmt.Sprintf("%s[%d]", field, at[i])
		never := ""
		switch {
		case failed:
		case op.Security.Public && t.Who == WhoAuthenticated:
			never = "who: authenticated never applies: the operation is public (security: [])"
		case op.Security.Anonymous && len(op.Security.Alternatives) == 0 && t.Who == WhoAuthenticated:
			never = "who: authenticated never applies: the operation lets in anonymous callers only (security: [{}])"
		case t.Key == KeyAPIKey && !hasScheme(carriesKey):
			never = "key apikey never applies: no security alternative accepts an API key or a token minted from one"
		case t.Key == KeySession && !hasScheme(is(SchemeAPIKeyCookie)):
			never = "key session never applies: no security alternative accepts a cookie session"
		}
		if never != "" {
			if !inherited {
				c.fail(op.Line, where, f, "%s", never)
			}
			continue
		}
		t.Inherited = inherited
		if t.Bucket == "" {
			t.Bucket = op.ID + "/" + t.Name
		} else if prev, seen := c.buckets[t.Bucket]; !seen {
			c.buckets[t.Bucket] = bucketOwner{where: where, tier: t}
		} else if p := prev.tier; p.Limit != t.Limit || p.Window != t.Window || p.Burst != t.Burst || p.Key != t.Key || p.Claim != t.Claim {
			c.fail(op.Line, where, f+".shared", "bucket %q is declared by %s with a different limit, window, burst or key", strings.TrimPrefix(t.Bucket, "shared:"), prev.where)
		}
		out = append(out, t)
	}
	return out
}
