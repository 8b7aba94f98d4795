package guard

import (
	"context"
	"net/http"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// decideFunc and deferFunc are the private forms of a *limits.Limiter's
// Decide and of specguard's authenticators' Authenticate (see
// internal/onetrip), which carry a credential's store check into the
// rate-limit call (one round trip on Redis instead of two) and the
// guard's one reading of the clock for the request (see internal/clock).
type (
	decideFunc = func(*http.Request, *policy.Operation, limits.Caller, onetrip.Precheck, *onetrip.Field, time.Time, bool) (limits.Verdict, error, bool)
	deferFunc  = func(context.Context, *http.Request, *policy.Scheme, onetrip.Mode) (*security.Principal, onetrip.Precheck, error)
)

// resolveOneTrip finds the private forms of the limiter and the
// authenticators, once. A limiter or authenticator of the user's own has
// none: it works, each store check costing a call of its own, each store
// reading the clock itself.
func (g *Guard) resolveOneTrip() {
	l, ok := g.limiter.(*limits.Limiter)
	if !ok || l == nil {
		return // a nil one is refused (unequipped)
	}
	hook, _ := onetrip.Decider.(func(*limits.Limiter) (decideFunc, bool))
	if hook == nil {
		return
	}
	g.decideFn, g.defer_ = hook(l)
	g.deferFns = map[policy.SchemeType]deferFunc{}
	for t, a := range g.auth {
		if d, ok := onetrip.Deferred(a).(deferFunc); ok && d != nil {
			g.deferFns[t] = d
		}
	}
}
