package security_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

// Each kind puts in the principal the one credential that admitted the
// request, with its own id: the token's jti and login, the session's id,
// the key's id. Only a token minted at a login is fresh, and a token
// minted from an API key names the key.
func TestPrincipalCarriesItsCredential(t *testing.T) {
	ctx := context.Background()
	store := security.NewMemoryStore(nil)
	scopes := func(string) []string { return []string{"a:read"} }
	records := security.NewMemoryKeyRecords(nil)
	keys := apikeys.New(store, records)
	ss := sessions.New(store, scopes)
	signing, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tokens.New("iss", "aud", signing, store, tokens.WithAPIKeys(keys))
	if err != nil {
		t.Fatal(err)
	}
	bearer := &policy.Scheme{Name: "bearerAuth", Type: policy.SchemeBearer}
	withToken := func(raw string) *security.Principal {
		t.Helper()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+raw)
		p, err := tokens.Bearer{Tokens: ts}.Authenticate(ctx, r, bearer)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	login, err := ts.Login(ctx, "alice", "writer", []string{"a:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	p := withToken(login.Access)
	a := tokens.AccessOf(p)
	if len(p.Credentials) != 1 || a == nil || a.Kind() != security.KindToken || a.ID() != login.AccessClaims.ID ||
		a.Family() != login.AccessClaims.Family || a.APIKey() != "" || !a.Fresh() || !p.Fresh() {
		t.Fatalf("a login's token: credentials %+v, want one fresh access token %s of login %s", p.Credentials, login.AccessClaims.ID, login.AccessClaims.Family)
	}
	if got := p.Claim(security.ClaimFamily); got != a.Family() {
		t.Errorf("Claim(fam) = %q, want the login %q", got, a.Family())
	}

	next, err := ts.Refresh(ctx, login.Refresh, func(string) (string, []string, error) { return "writer", []string{"a:read"}, nil })
	if err != nil {
		t.Fatal(err)
	}
	p = withToken(next.Access)
	if a := tokens.AccessOf(p); a == nil || a.ID() != next.AccessClaims.ID || a.Family() != login.AccessClaims.Family || a.Fresh() || p.Fresh() {
		t.Fatalf("a refreshed token: %+v, want a token of the same login, not fresh", a)
	}

	full, k, err := keys.Create(ctx, "alice", "ci", []string{"a:read"})
	if err != nil {
		t.Fatal(err)
	}
	minted, err := ts.MintForKey(ctx, k, "writer", []string{"a:read"})
	if err != nil {
		t.Fatal(err)
	}
	p = withToken(minted.Access)
	if a := tokens.AccessOf(p); a == nil || a.APIKey() != k.ID || p.Fresh() {
		t.Fatalf("a token minted from key %s: %+v, want it to name the key, not fresh", k.ID, a)
	}

	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", full)
	p, err = keys.Authenticate(ctx, r, &policy.Scheme{Name: "keyAuth", Type: policy.SchemeAPIKeyHeader, Param: "X-API-Key"})
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Credential(security.KindAPIKey); len(p.Credentials) != 1 || c == nil || c.ID() != k.ID || tokens.AccessOf(p) != nil || p.Fresh() {
		t.Fatalf("an API key: credentials %+v, want key %s alone, not fresh", p.Credentials, k.ID)
	}

	sess, err := ss.Create(ctx, "alice", "writer", "test")
	if err != nil {
		t.Fatal(err)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "sid="+sess.Cookie)
	p, err = ss.Authenticate(ctx, r, &policy.Scheme{Name: "cookieAuth", Type: policy.SchemeAPIKeyCookie, Param: "sid"})
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Credential(security.KindSession); len(p.Credentials) != 1 || c == nil || c.ID() != sess.Session.ID || p.Fresh() {
		t.Fatalf("a session: credentials %+v, want session %s alone, not fresh", p.Credentials, sess.Session.ID)
	}

	if (&security.Principal{}).Fresh() {
		t.Error("a principal without credentials is fresh")
	}
}
