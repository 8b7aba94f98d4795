package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
)

// Budget is a number of events per window: "5/15m".
type Budget struct {
	Limit  int64
	Window time.Duration
}

func (b Budget) String() string { return fmt.Sprintf("%d/%s", b.Limit, b.Window) }

// ParseBudget reads "N/duration", such as 5/15m.
func ParseBudget(s string) (Budget, error) {
	n, d, ok := strings.Cut(strings.TrimSpace(s), "/")
	limit, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || limit < 1 || limit > 1_000_000 {
		return Budget{}, fmt.Errorf("%q is not a number of attempts (1 to 1000000) per window, such as 5/15m", s)
	}
	window, err := time.ParseDuration(d)
	if err != nil || window < time.Second || window > 30*24*time.Hour || window%time.Second != 0 {
		return Budget{}, fmt.Errorf("%q is not a number of attempts per window (whole seconds, 1s to 720h), such as 5/15m", s)
	}
	b := Budget{Limit: limit, Window: window}
	if err := b.rounding(); err != nil {
		return Budget{}, fmt.Errorf("%q: %v", s, err)
	}
	return b, nil
}

// rounding says when b would not be counted as written: the store counts
// one attempt per whole microsecond, so 600000/1s would be kept as a
// million a second. Refused past 1%, as for an x-rate-limit tier.
func (b Budget) rounding() error {
	if b.Window > 30*24*time.Hour {
		return fmt.Errorf("%s: a window is at most 720h", b)
	}
	us := b.Window.Microseconds()
	iv := us / b.Limit
	if iv < 1 {
		return fmt.Errorf("%s is finer than one attempt per microsecond", b)
	}
	if (us-iv*b.Limit)*100 > iv*b.Limit {
		return fmt.Errorf("%s would be kept as %d per %s: the store counts one attempt per whole microsecond; choose a number that divides the window more evenly", b, us/iv, b.Window)
	}
	return nil
}

// failedPasswords limits failed password checks, across every operation
// that checks one (login, browser session, the token endpoint's password
// and client_credentials grants): per client address, and per account
// (the normalised email) whatever the address. An attempt is charged to both budgets before the
// password is checked, so concurrent guesses cannot overrun them, and
// refunded when the password was right: only failures count.
//
// The account budget lets anyone who knows an address keep its password
// logins refused by spending one failed guess every window/limit; what
// the account already holds (tokens, sessions, API keys) keeps working,
// and the guesses count against the guesser's addresses too.
type failedPasswords struct {
	store             limits.Store
	perIP, perAccount Budget
	timeout           time.Duration
}

// errTooManyFailures: failed-password budgets are spent.
type errTooManyFailures struct {
	spent []spentBudget // those that refused, the address's first
}

// spentBudget is one failed-password budget that refused.
type spentBudget struct {
	name  string        // "failed-logins-ip" or "failed-logins-account"
	of    Budget        // its number and window
	retry time.Duration // when it admits again
}

func (e *errTooManyFailures) Error() string {
	return fmt.Sprintf("too many failed password checks (%s); retry in %s", strings.Join(e.names(), ", "), e.retry())
}

func (e *errTooManyFailures) names() []string {
	names := make([]string, len(e.spent))
	for i, b := range e.spent {
		names[i] = b.name
	}
	return names
}

// retry is when every budget that refused admits again.
func (e *errTooManyFailures) retry() time.Duration {
	var d time.Duration
	for _, b := range e.spent {
		d = max(d, b.retry)
	}
	return d
}

// Names of the budgets, as a 429 names them.
const (
	failedPerIP      = "failed-logins-ip"
	failedPerAccount = "failed-logins-account"
)

func (f *failedPasswords) requests(addr netip.Addr, email string, cost int64) []limits.Request {
	sum := sha256.Sum256([]byte("specguard failed logins\x00" + EmailKey(email)))
	req := func(bucket string, b Budget, who limits.Identity) limits.Request {
		interval := max(b.Window.Microseconds()/b.Limit, 1)
		return limits.Request{Bucket: bucket, Who: who, Interval: interval, Burst: b.Limit, Cost: cost, TTL: b.Window}
	}
	return []limits.Request{
		req(failedPerIP, f.perIP, limits.Identity{Kind: policy.KeyIP, IP: addr}),
		req(failedPerAccount, f.perAccount, limits.Identity{Kind: policy.KeyClaim, Name: "account", Value: hex.EncodeToString(sum[:16])}),
	}
}

// take charges one attempt to addr's and email's budgets. It returns the
// refund to call when the password was right, or errTooManyFailures, or an
// error wrapping security.ErrUnavailable when the store cannot say (a
// password is never checked unlimited).
func (f *failedPasswords) take(ctx context.Context, addr netip.Addr, email string) (refund func(), err error) {
	return f.charge(ctx, addr, email, 2)
}

// takeAddr is take for a credential that names no account (an API key
// presented to the token endpoint): addr's budget alone.
func (f *failedPasswords) takeAddr(ctx context.Context, addr netip.Addr) (refund func(), err error) {
	return f.charge(ctx, addr, "", 1)
}

// charge takes one attempt from the first n budgets of addr and email
// (the address's, then the account's).
func (f *failedPasswords) charge(ctx context.Context, addr netip.Addr, email string, n int) (refund func(), err error) {
	if f == nil {
		return func() {}, nil
	}
	results := make([]limits.Result, n)
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	allowed, err := f.store.Allow(cctx, f.requests(addr, email, 1)[:n], results)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", security.ErrUnavailable, err)
	}
	if !allowed {
		e := &errTooManyFailures{}
		for i, r := range results {
			if !r.Allowed {
				b := spentBudget{name: failedPerIP, of: f.perIP, retry: r.RetryAfter}
				if i == 1 {
					b.name, b.of = failedPerAccount, f.perAccount
				}
				e.spent = append(e.spent, b)
			}
		}
		if len(e.spent) == 0 { // a store that refused without saying which
			e.spent = append(e.spent, spentBudget{name: failedPerAccount, of: f.perAccount})
		}
		return nil, e
	}
	return func() {
		// Best effort: a refund lost leaves one failure too many counted.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.timeout)
		defer cancel()
		_, _ = f.store.Allow(rctx, f.requests(addr, email, -1)[:n], make([]limits.Result, n))
	}, nil
}

// tooManyFailures writes the 429 of err when it is a spent
// failed-password budget, and reports whether it did.
func (s *Service) tooManyFailures(w http.ResponseWriter, err error) bool {
	var e *errTooManyFailures
	if !errors.As(err, &e) {
		return false
	}
	seconds := func(d time.Duration) int { return max(int((d+time.Second-1)/time.Second), 1) }
	retry := seconds(e.retry())
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(retry))
	// The budgets that refused, each with its own wait, not the
	// operation's tiers that admitted the request (which the guard set):
	// a client reading RateLimit must see why it has to wait.
	var policies, fields []string
	for _, b := range e.spent {
		policies = append(policies, fmt.Sprintf("%q;q=%d;w=%d", b.name, b.of.Limit, int64((b.of.Window+time.Second-1)/time.Second)))
		fields = append(fields, fmt.Sprintf("%q;r=0;t=%d", b.name, seconds(b.retry)))
	}
	h.Set("RateLimit-Policy", strings.Join(policies, ", "))
	h.Set("RateLimit", strings.Join(fields, ", "))
	s.problems.Write(w, &problem.Problem{Type: problem.QuotaExceeded, Title: "Request cannot be satisfied as assigned quota has been exceeded",
		Status: http.StatusTooManyRequests, Detail: fmt.Sprintf("Too many failed password checks: %s; retry in %ds.", strings.Join(e.names(), ", "), retry),
		ViolatedPolicies: e.names()})
	return true
}
