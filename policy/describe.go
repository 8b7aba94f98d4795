package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// String names the operation as errors and warnings do: "POST /posts (createPost)".
func (o *Operation) String() string {
	if o.ID == "" {
		return o.Method + " " + o.Path
	}
	return fmt.Sprintf("%s %s (%s)", o.Method, o.Path, o.ID)
}

// Access classifies who may call an operation.
type Access string

const (
	AccessPublic    Access = "public"    // security: []
	AccessOptional  Access = "optional"  // {} among the alternatives
	AccessProtected Access = "protected" // a credential is required
)

// Access says whether the operation is public, optional or protected.
func (s Security) Access() Access {
	switch {
	case s.Public:
		return AccessPublic
	case s.Anonymous:
		return AccessOptional
	}
	return AccessProtected
}

// String describes one alternative: its schemes joined by " + " (AND), each
// with its scopes in brackets, e.g. "oauth2[posts:write] + cookieAuth".
func (r Requirement) String() string {
	parts := make([]string, len(r))
	for i, sr := range r {
		parts[i] = sr.Scheme.Name
		if len(sr.Scopes) > 0 {
			parts[i] += "[" + strings.Join(sr.Scopes, " ") + "]"
		}
	}
	return strings.Join(parts, " + ")
}

// Describe lists who may call, one entry per alternative, in document order:
// "public", "anonymous allowed", or an alternative as Requirement.String.
func (s Security) Describe() []string {
	if s.Public {
		return []string{"public"}
	}
	var out []string
	for _, alt := range s.Alternatives {
		out = append(out, alt.String())
	}
	if s.Anonymous {
		out = append(out, "anonymous allowed")
	}
	return out
}

// String describes the tier, e.g.
// "anon: 60/1m burst 10 by ip, anonymous callers, shared writes, allow on store error".
func (t *Tier) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%s", t.Name, t.Limit, shortDuration(t.Window))
	if t.Burst != t.Limit {
		fmt.Fprintf(&b, " burst %d", t.Burst)
	}
	b.WriteString(" by ")
	b.WriteString(t.KeyName())
	if t.Who != WhoAny {
		fmt.Fprintf(&b, ", %s callers", t.Who)
	}
	if t.Cost != 1 {
		fmt.Fprintf(&b, ", cost %d", t.Cost)
	}
	if name, ok := strings.CutPrefix(t.Bucket, "shared:"); ok {
		fmt.Fprintf(&b, ", shared %s", name)
	}
	if t.AllowOnStoreError {
		b.WriteString(", allow on store error")
	}
	return b.String()
}

// KeyName is the tier's key as written in x-rate-limit: "ip", "claim:tenant"...
func (t *Tier) KeyName() string {
	if t.Key == KeyClaim {
		return "claim:" + t.Claim
	}
	return t.Key.String()
}

// shortDuration prints whole minutes and hours without trailing zero units:
// 15m rather than 15m0s.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

// Route is an operation's compiled policy as plain data, for listings
// (`specguard routes`, the /docs/policy page) and for JSON.
type Route struct {
	Method       string        `json:"method"`
	Path         string        `json:"path"`
	OperationID  string        `json:"operationId"`
	Line         int           `json:"line,omitempty"`
	Access       Access        `json:"access"`
	Who          []string      `json:"who"`
	Alternatives []Alternative `json:"alternatives"`
	RequireFresh bool          `json:"requireFresh,omitempty"`
	// Owner is "owner only" or "owner only, or SCOPE, ..." (x-owner); empty
	// when the operation does not say it acts on the caller's own only.
	Owner     string  `json:"owner,omitempty"`
	Unlimited bool    `json:"unlimited,omitempty"`
	Limits    []Limit `json:"limits"`
}

// Alternative is one security alternative: every scheme must pass.
type Alternative struct {
	Schemes []SchemeScopes `json:"schemes"`
}

// SchemeScopes is one scheme of an alternative with the scopes it needs.
type SchemeScopes struct {
	Scheme string   `json:"scheme"`
	Type   string   `json:"type"`
	Scopes []string `json:"scopes"`
}

// Limit is one rate-limit tier.
type Limit struct {
	Name         string `json:"name"`
	Limit        int64  `json:"limit"`
	Window       string `json:"window"`
	Burst        int64  `json:"burst"`
	Key          string `json:"key"`
	Who          string `json:"who"`
	Cost         int64  `json:"cost"`
	Shared       string `json:"shared,omitempty"`
	OnStoreError string `json:"onStoreError"`
	Summary      string `json:"summary"`
}

// Routes lists every operation's policy, in the table's order.
func (t *Table) Routes() []Route {
	routes := make([]Route, 0, len(t.ops))
	for _, op := range t.ops {
		r := Route{
			Method: op.Method, Path: op.Path, OperationID: op.ID, Line: op.Line,
			Access: op.Security.Access(), Who: op.Security.Describe(),
			Alternatives: []Alternative{}, Limits: []Limit{},
			RequireFresh: op.RequireFresh, Unlimited: op.Unlimited,
		}
		if op.Owner != nil {
			r.Owner = op.Owner.String()
		}
		for _, alt := range op.Security.Alternatives {
			a := Alternative{}
			for _, sr := range alt {
				a.Schemes = append(a.Schemes, SchemeScopes{Scheme: sr.Scheme.Name, Type: sr.Scheme.Type.String(), Scopes: append([]string{}, sr.Scopes...)})
			}
			r.Alternatives = append(r.Alternatives, a)
		}
		for i := range op.Limits {
			tier := &op.Limits[i]
			l := Limit{
				Name: tier.Name, Limit: tier.Limit, Window: shortDuration(tier.Window), Burst: tier.Burst,
				Key: tier.KeyName(), Who: tier.Who.String(), Cost: tier.Cost, OnStoreError: "deny",
				Summary: tier.String(),
			}
			if name, ok := strings.CutPrefix(tier.Bucket, "shared:"); ok {
				l.Shared = name
			}
			if tier.AllowOnStoreError {
				l.OnStoreError = "allow"
			}
			r.Limits = append(r.Limits, l)
		}
		routes = append(routes, r)
	}
	return routes
}

// Parameters are o's parameters as a request is validated against them:
// the path item's, less those the operation replaces (the same name and
// location), then the operation's.
func (o *Operation) Parameters() []*openapi3.Parameter {
	var out []*openapi3.Parameter
	for _, ref := range o.PathItem.Parameters {
		if p := ref.Value; p != nil && o.Spec.Parameters.GetByInAndName(p.In, p.Name) == nil {
			out = append(out, p)
		}
	}
	for _, ref := range o.Spec.Parameters {
		if ref.Value != nil {
			out = append(out, ref.Value)
		}
	}
	return out
}
