package policy

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/specguard/specguard/internal/redact"
)

// ValidProviderURL reports why raw cannot name an identity provider's
// discovery document, or nil: it must be an absolute https URL, or http on
// a loopback host (a provider on the same machine, in development and
// tests). Keys fetched over plain http from elsewhere could be replaced on
// the way, and with them every token.
// Its message shows raw with its secrets masked (a password, ?token=).
func ValidProviderURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL without credentials or fragment", redact.URL(raw))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is accepted only on a loopback host; use https", redact.URL(raw))
	}
	return fmt.Errorf("%q: want an https URL", redact.URL(raw))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// compileProvider reads an openIdConnect scheme's provider, or fails and
// returns nil.
func (c *compiler) compileProvider(name string, s *openapi3.SecurityScheme) *Provider {
	where := "components.securitySchemes." + name
	line := originLine(s.Origin)
	p := &Provider{URL: s.OpenIdConnectUrl, Line: line}
	ok := true
	// An invalid provider is reported where an operation uses it: a
	// scheme nothing uses is not enforced, whatever it says.
	bad := func(field, format string, args ...any) {
		c.providerErrs[name] = append(c.providerErrs[name], &Error{Source: c.source, Line: line, Where: where, Field: field, Msg: fmt.Sprintf(format, args...)})
		ok = false
	}
	if p.URL == "" {
		bad("openIdConnectUrl", "missing: the provider's discovery document, such as https://id.example.com/.well-known/openid-configuration")
	} else if err := ValidProviderURL(p.URL); err != nil {
		bad("openIdConnectUrl", "%v", err)
	}
	var err error
	if raw, present := s.Extensions[ExtAudience]; !present {
		bad(ExtAudience, "missing: the audience (aud) this API's tokens are issued for, a string or a list; without it a token issued to any other client of the provider would pass")
	} else if p.Audience, err = stringList(raw); err != nil {
		bad(ExtAudience, "%v", err)
	}
	if raw, present := s.Extensions[ExtIssuers]; present {
		if p.Issuers, err = stringList(raw); err != nil {
			bad(ExtIssuers, "%v", err)
		}
	}
	if raw, present := s.Extensions[ExtScopesClaim]; present {
		claim, isString := raw.(string)
		if !isString || !validName.MatchString(claim) {
			bad(ExtScopesClaim, "must be a claim name, such as scp or roles, not %v", raw)
		}
		p.ScopesClaim = claim
	}
	p.Introspect = true
	const apiKeyPrefix = "sg_" // security.APIKeyPrefix, which imports this package
	switch v := s.Extensions[ExtIntrospect].(type) {
	case nil, bool:
		if v != nil {
			p.Introspect = v.(bool)
		}
	case map[string]any:
		prefix, isString := v["prefix"].(string)
		switch {
		case len(v) != 1 || !isString || strings.TrimSpace(prefix) != prefix || prefix == "":
			bad(ExtIntrospect, "want true, false or {prefix: <the start of this provider's opaque tokens>}, not %v", v)
		case strings.HasPrefix(prefix, apiKeyPrefix):
			bad(ExtIntrospect, "prefix %q starts as specguard's API keys do (%s): a token that starts so is never sent to a provider", prefix, apiKeyPrefix)
		}
		p.OpaquePrefix = prefix
	default:
		bad(ExtIntrospect, "want true, false or {prefix: <the start of this provider's opaque tokens>}, not %v", v)
	}
	if !ok {
		return nil
	}
	return p
}

// checkIntrospection refuses a document whose openIdConnect schemes would
// send one opaque token to several identity providers' introspection (a
// provider is its discovery URL): a provider that introspects every opaque
// token receives the others' live tokens, whether it is tried first on an
// operation listing both or is the only one of an operation a client sends
// every token to. Of the schemes
// its operations use, at most one may introspect every opaque token; the
// others must say which are theirs (x-introspect: {prefix: ...}, prefixes
// that do not overlap) or take none (x-introspect: false).
func (c *compiler) checkIntrospection(schemes map[string]*Scheme) {
	fail := func(s *Scheme, format string, args ...any) {
		c.fail(s.Provider.Line, "components.securitySchemes."+s.Name, ExtIntrospect, format, args...)
	}
	for _, cf := range introspectionConflicts(schemes, func(s *Scheme) string { return s.Provider.URL }) {
		if cf.every {
			fail(cf.schemes[1], "openIdConnect schemes %s would each introspect every opaque token, so one would receive the other's tokens (tried first on an operation listing both, "+
				"or the only one of an operation a client sends its token to); give all but one x-introspect: {prefix: <the start of its opaque tokens>}, or x-introspect: false",
				cf.names())
		} else {
			a, b := cf.schemes[0], cf.schemes[1]
			fail(b, "prefix %q overlaps %s's %q: an opaque token could be either's", b.Provider.OpaquePrefix, a.Name, a.Provider.OpaquePrefix)
		}
	}
}

// CheckIntrospectionLimited refuses introspection for the openIdConnect
// schemes named (those given client credentials: SPECGUARD_OIDC_<NAME>_CLIENT_ID,
// oidc.Settings.ClientID) when an operation accepts one of them but has no
// tier that counts anonymous callers. A token the guard would introspect is
// first charged to the operation's tiers as an anonymous call; without such
// a tier, made-up tokens would each cost a call to the provider, without
// limit, until it throttles the client and real tokens are undecided too.
func (t *Table) CheckIntrospectionLimited(schemes ...string) error {
	for _, op := range t.ops {
		if countsAnonymous(op) {
			continue
		}
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				if s := sr.Scheme; s.Type == SchemeOIDC && s.Provider != nil && s.Provider.Introspect && slices.Contains(schemes, s.Name) {
					return fmt.Errorf("%s:%d: %s accepts %s, whose opaque tokens are introspected, but no tier of its x-rate-limit counts anonymous callers (who: any or anonymous): "+
						"a token is charged as an anonymous call before it is sent to the provider, so made-up tokens would each cost a call, without limit; "+
						"add a tier keyed by ip to the operation, or x-introspect: false to the scheme", t.Source, op.Line, op, s.Name)
				}
			}
		}
	}
	return nil
}

// CheckProviderURLs refuses URLs that replace the openIdConnectUrl of
// some schemes (urls, by scheme name: SPECGUARD_OIDC_<NAME>_URL,
// oidc.Settings.URL) when they make two providers of schemes the document
// declares as one. Compile lets schemes of one openIdConnectUrl (two
// audiences, say) each introspect every opaque token, or tokens of
// overlapping prefixes, because such a token goes to one provider only;
// at two URLs, one provider would receive the other's live tokens.
func (t *Table) CheckProviderURLs(urls map[string]string) error {
	url := func(s *Scheme) string {
		if u := urls[s.Name]; u != "" {
			return u
		}
		return s.Provider.URL
	}
	conflicts := introspectionConflicts(t.Schemes, url)
	if len(conflicts) == 0 {
		return nil
	}
	cf := conflicts[0]
	a, b := cf.schemes[0], cf.schemes[1]
	what := "each introspect every opaque token"
	if !cf.every {
		what = fmt.Sprintf("introspect opaque tokens of overlapping prefixes (%q, %q)", a.Provider.OpaquePrefix, b.Provider.OpaquePrefix)
	}
	return fmt.Errorf("openIdConnect schemes %s %s, as one provider in %s (openIdConnectUrl %s), but are given two URLs (%s, %s), so one would receive the other's live tokens; "+
		"give them the same URL, or all but one x-introspect: {prefix: <the start of its opaque tokens>} or false",
		cf.names(), what, t.Source, redact.URL(a.Provider.URL), redact.URL(url(a)), redact.URL(url(b)))
}

// conflict is openIdConnect schemes that would introspect the same opaque
// tokens at several providers: each every one (every; one scheme per
// provider), or two of overlapping prefixes.
type conflict struct {
	schemes []*Scheme
	every   bool
}

// names joins the schemes' names with " and ".
func (c conflict) names() string {
	names := make([]string, len(c.schemes))
	for i, s := range c.schemes {
		names[i] = s.Name
	}
	return strings.Join(names, " and ")
}

// introspectionConflicts lists the schemes that would send one opaque
// token to two providers, a provider being the URL url gives a scheme
// (schemes of one provider send a token to no one else: each provider
// counts once).
func introspectionConflicts(schemes map[string]*Scheme, url func(*Scheme) string) []conflict {
	var every, prefixed []*Scheme
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(schemes)) {
		s := schemes[name]
		if s.Type != SchemeOIDC || !s.Provider.Introspect {
			continue
		}
		if s.Provider.OpaquePrefix == "" {
			if !seen[url(s)] {
				every = append(every, s)
			}
			seen[url(s)] = true
		} else {
			prefixed = append(prefixed, s)
		}
	}
	var out []conflict
	if len(every) > 1 {
		out = append(out, conflict{schemes: every, every: true})
	}
	for i, a := range prefixed {
		for _, b := range prefixed[i+1:] {
			overlap := strings.HasPrefix(a.Provider.OpaquePrefix, b.Provider.OpaquePrefix) || strings.HasPrefix(b.Provider.OpaquePrefix, a.Provider.OpaquePrefix)
			if overlap && url(a) != url(b) {
				out = append(out, conflict{schemes: []*Scheme{a, b}})
			}
		}
	}
	return out
}

// stringList reads a string or a non-empty list of non-empty strings.
func stringList(raw any) ([]string, error) {
	switch v := raw.(type) {
	case string:
		if strings.TrimSpace(v) == "" {
			return nil, errors.New("must not be empty")
		}
		return []string{v}, nil
	case []any:
		if len(v) == 0 {
			return nil, errors.New("must list at least one value")
		}
		out := make([]string, 0, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok || strings.TrimSpace(s) == "" {
				return nil, fmt.Errorf("[%d]: must be a non-empty string, not %v", i, item)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("must be a string or a list of strings, not %v", raw)
}

// Providers returns the openIdConnect schemes some operation uses, sorted
// by name.
func (t *Table) Providers() []*Scheme {
	var out []*Scheme
	for _, name := range slices.Sorted(maps.Keys(t.Schemes)) {
		if s := t.Schemes[name]; s.Type == SchemeOIDC {
			out = append(out, s)
		}
	}
	return out
}

// String says what the provider accepts, in one line: "discovery URL;
// audience a, b; issuers as discovered; scopes in scope or scp".
func (p *Provider) String() string {
	iss := "the discovery document's issuer"
	if len(p.Issuers) > 0 {
		iss = strings.Join(p.Issuers, ", ")
	}
	scopes := "scope or scp"
	if p.ScopesClaim != "" {
		scopes = p.ScopesClaim
	}
	opaque := "introspected"
	switch {
	case !p.Introspect:
		opaque = "refused"
	case p.OpaquePrefix != "":
		opaque = fmt.Sprintf("introspected when they start with %q", p.OpaquePrefix)
	}
	return fmt.Sprintf("discovery %s; audience %s; issuers %s; scopes in %s; opaque tokens %s", p.URL, strings.Join(p.Audience, ", "), iss, scopes, opaque)
}
