package guard

import (
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// token stands for an access token: fresh or not, minted from an API key
// or not.
type token struct {
	fresh bool
	key   string
}

func (token) Kind() string     { return security.KindToken }
func (token) ID() string       { return "jti" }
func (t token) Fresh() bool    { return t.fresh }
func (t token) APIKey() string { return t.key }

// Under AND the principal holds every credential, in the requirement's
// order, and the tiers count by each: the session, the key (presented, or
// the one a token was minted from). It is fresh only when every credential
// is, its scopes are those every credential holds, and the first
// credential's claim of a name wins.
func TestCombinedPrincipalCountsEveryCredential(t *testing.T) {
	g := &Guard{table: &policy.Table{}}
	caller := func(p *security.Principal, ids bool, charged uint64) limits.Caller {
		return g.caller(httptest.NewRequest("GET", "/", nil), p, ids, charged)
	}
	counted := &policy.Operation{Limits: []policy.Tier{{Key: policy.KeyIP}, {Key: policy.KeySession}}}
	key := &security.Principal{Subject: "alice", Scheme: "apiKeyAuth", Scopes: []string{"a", "b"},
		Credentials: []security.Credential{security.NewCredential(security.KindAPIKey, "k1")}}
	sess := &security.Principal{Subject: "alice", Scheme: "cookieAuth", Scopes: []string{"b", "c"},
		Credentials: []security.Credential{security.NewCredential(security.KindSession, "s1")},
		Claims:      map[string]string{"tenant": "acme"}}
	p := combine(combine(nil, key, "apiKeyAuth"), sess, "cookieAuth")
	c := caller(p, countsByCredential(counted), 0)
	if p.Scheme != "apiKeyAuth+cookieAuth" || !slices.Equal(p.Scopes, []string{"b"}) || len(p.Credentials) != 2 ||
		c.KeyID != "k1" || c.SessionID != "s1" || p.Claim("tenant") != "acme" || p.Fresh() {
		t.Fatalf("key AND session: %+v, caller %+v", p, c)
	}
	// The principals combined are shared by other requests: combining
	// writes into neither, even where the first has room to append.
	roomy := &security.Principal{Subject: "alice", Scheme: "apiKeyAuth", Scopes: []string{"b"},
		Credentials: append(make([]security.Credential, 0, 4), security.NewCredential(security.KindAPIKey, "k1")),
		Claims:      map[string]string{"tenant": "acme"}}
	withSession := combine(combine(nil, roomy, "apiKeyAuth"), sess, "cookieAuth")
	withToken := combine(combine(nil, roomy, "apiKeyAuth"), &security.Principal{Subject: "alice", Scopes: []string{"b"},
		Credentials: []security.Credential{token{}}, Claims: map[string]string{"fam": "f9"}}, "bearerAuth")
	if len(roomy.Credentials) != 1 || len(roomy.Claims) != 1 || len(sess.Credentials) != 1 || len(sess.Claims) != 1 ||
		withSession.Credentials[1].Kind() != security.KindSession || withToken.Credentials[1].Kind() != security.KindToken ||
		withSession.Claim("fam") != "" || withToken.Claim("fam") != "f9" {
		t.Fatalf("combining wrote into a shared principal: %+v %+v %+v", roomy, withSession, withToken)
	}

	fresh := &security.Principal{Subject: "alice", Scheme: "bearerAuth", Credentials: []security.Credential{token{fresh: true}},
		Claims: map[string]string{security.ClaimFamily: "f1", "tenant": "first"}}
	other := &security.Principal{Subject: "alice", Scheme: "oauth2", Credentials: []security.Credential{token{fresh: true, key: "k2"}},
		Claims: map[string]string{security.ClaimFamily: "f2", "tenant": "second"}}
	p = combine(combine(nil, fresh, "bearerAuth"), other, "oauth2")
	if c := caller(p, countsByCredential(counted), 0); !p.Fresh() || c.KeyID != "k2" || p.Claim(security.ClaimFamily) != "f1" || p.Claim("tenant") != "first" {
		t.Fatalf("two fresh tokens: fresh %v, caller %+v, claims %v", p.Fresh(), c, p.Claims)
	}
	p = combine(combine(nil, fresh, "bearerAuth"), key, "apiKeyAuth")
	if p.Fresh() {
		t.Fatal("a fresh token AND an API key is fresh")
	}
	if c := caller(nil, countsByCredential(counted), 0); c.Authenticated || c.KeyID != "" {
		t.Fatalf("anonymous caller %+v", c)
	}
	// Without a tier that counts by them, they are not looked up.
	if c := caller(p, countsByCredential(&policy.Operation{Limits: []policy.Tier{{Key: policy.KeyPrincipal}}}), 0); c.KeyID != "" || c.SessionID != "" || c.Subject != "alice" {
		t.Fatalf("caller for a principal tier %+v", c)
	}
	// A limiter of one's own gets them whatever the tiers.
	if c := caller(p, true, 0); c.KeyID != "k1" || !c.Authenticated {
		t.Fatalf("caller for a limiter of one's own %+v", c)
	}
}
