package security_test

// Fuzz targets for every parser here that reads attacker input. Seeds are in
// the f.Add calls and in testdata/fuzz/<FuzzName>/.
//
// Real credentials are random in each process, and the fuzzing engine runs
// its workers in processes of their own, so a seed cannot hold one literally.
// Seeds name them with placeholders instead ({session}, {key}, {token}, ...)
// that the target replaces before the call, and a (position, xor) pair flips
// one byte of the result: the engine mutates around real credentials and
// inside them. A "!" in a placeholder ({session!}, {key!}, {token!}) gives
// the credential with a non-canonical last base64 character, which must not
// authenticate.

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

// fuzzFlip xors the byte at pos (modulo the length) of s with x.
func fuzzFlip(s string, pos uint16, x byte) string {
	if x == 0 || s == "" {
		return s
	}
	b := []byte(s)
	b[int(pos)%len(b)] ^= x
	return string(b)
}

// fuzzSplit returns the header values of s: none when s is empty, otherwise
// one per line.
func fuzzSplit(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// fuzzErrIs reports whether err wraps one of targets.
func fuzzErrIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []struct{ auth, query string }{
		{"", ""},
		{"Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln", ""},
		{"bearer abc", ""},
		{"BEARER abc", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"Bearer  abc", ""},
		{"Bearer abc def", ""},
		{"Bearer\tabc", ""},
		{"Bearer abc==", ""},
		{"Bearer =abc", ""},
		{"Bearer abc=d", ""},
		{"Bearer abc\nBearer abc", ""},
		{"Basic dXNlcjpwYXNz", ""},
		{"Bearer abc", "access_token=abc"},
		{"", "access%5Ftoken=abc"},
		{"", "a=1;access_token=2&b"},
		{"Bearer é", ""},
		{"Bearer " + strings.Repeat("a", security.MaxTokenBytes), ""},
		{"Bearer " + strings.Repeat("a", security.MaxTokenBytes+1), ""},
	} {
		f.Add(s.auth, s.query)
	}
	f.Fuzz(func(t *testing.T, auth, query string) {
		values := fuzzSplit(auth)
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: query}, Header: http.Header{}}
		if values != nil {
			r.Header["Authorization"] = values
		}
		tok, err := security.BearerToken(r)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q returned with error %v", tok, err)
			}
			if !fuzzErrIs(err, security.ErrMalformed, security.ErrInvalid) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrInvalid", err)
			}
			return
		}
		if _, inQuery := r.URL.Query()["access_token"]; inQuery {
			t.Fatalf("access_token in the query %q was not refused", query)
		}
		if tok == "" {
			return
		}
		if len(tok) > security.MaxTokenBytes {
			t.Fatalf("token of %d bytes, more than %d", len(tok), security.MaxTokenBytes)
		}
		if strings.ContainsAny(tok, " \t\r\n") {
			t.Fatalf("token %q contains white space", tok)
		}
		if len(values) != 1 {
			t.Fatalf("token returned from %d Authorization headers", len(values))
		}
		scheme, rest, _ := strings.Cut(values[0], " ")
		if !strings.EqualFold(scheme, "Bearer") || rest != tok {
			t.Fatalf("token %q is not what follows \"Bearer \" in %q", tok, values[0])
		}
	})
}

const fuzzSessionCookieName = "__Host-fuzz-session"

func FuzzSessionCookie(f *testing.F) {
	ctx := context.Background()
	store := security.NewMemoryStore(nil)
	ss := sessions.New(store, func(string) []string { return []string{"a:read"} })
	ns, err := ss.Create(ctx, "alice", "reader", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	_, secret, _ := strings.Cut(strings.TrimPrefix(ns.Cookie, "alice."), ".")
	fill := strings.NewReplacer("{session}", ns.Cookie, "{csrf}", ns.CSRF,
		"{id}", ns.Session.ID, "{secret}", secret,
		"{session!}", ns.Cookie[:len(ns.Cookie)-1]+string(guardtest.NonCanonicalLast(f, secret)))
	scheme := &policy.Scheme{Name: "cookieAuth", Type: policy.SchemeAPIKeyCookie, Param: fuzzSessionCookieName}
	const host = "app.test"

	sid := fuzzSessionCookieName + "="
	csrf := sessions.CSRFCookie + "={csrf}"
	for _, s := range []struct{ cookie, method, header, origin, site string }{
		{"", "GET", "", "", ""},
		{sid + "{session}", "GET", "", "", ""},
		{sid + "{session}", "HEAD", "", "", "cross-site"},
		{sid + "{session}", "POST", "", "", ""},
		{sid + "{session}; " + csrf, "POST", "{csrf}", "", ""},
		{sid + "{session}; " + csrf, "DELETE", "{csrf}", "https://" + host, "same-origin"},
		{sid + "{session}; " + csrf, "PUT", "{csrf}", "https://evil.test", ""},
		{sid + "{session}; " + csrf, "POST", "{csrf}", "", "same-site"},
		{sid + "{session}; " + csrf, "get", "{csrf}", "", ""},
		{sid + "{session}; " + sid + "{session}", "GET", "", "", ""},
		{sid + "{session}\n" + sid + "alice.planted.planted", "GET", "", "", ""},
		{sid + `"{session}"`, "GET", "", "", ""},
		{sid + "alice.{id}.{secret}=", "GET", "", "", ""},
		{sid + "bob.{id}.{secret}", "GET", "", "", ""},
		{sid + "alice.{id}." + strings.Repeat("A", 43), "GET", "", "", ""},
		{sid + "{session}" + strings.Repeat("A", 300), "GET", "", "", ""},
		{sid + "ålice.{id}.{secret}", "GET", "", "", ""},
		{sid + "{session!}", "GET", "", "", ""},
	} {
		f.Add(s.cookie, s.method, s.header, s.origin, s.site, uint16(0), byte(0))
	}
	f.Add(sid+"{session}", "GET", "", "", "", uint16(len(sid)+len(ns.Cookie)-1), byte(1))

	f.Fuzz(func(t *testing.T, cookie, method, csrfHeader, origin, site string, pos uint16, x byte) {
		cookie = fuzzFlip(fill.Replace(cookie), pos, x)
		csrfHeader = fill.Replace(csrfHeader)
		r := &http.Request{Method: method, Host: host, URL: &url.URL{Path: "/"}, Header: http.Header{}}
		if lines := fuzzSplit(cookie); lines != nil {
			r.Header["Cookie"] = lines
		}
		for k, v := range map[string]string{sessions.CSRFHeader: csrfHeader, "Origin": origin, "Sec-Fetch-Site": site} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		var presented []string
		for _, c := range r.Cookies() {
			if c.Name == fuzzSessionCookieName {
				presented = append(presented, c.Value)
			}
		}

		p, err := ss.Authenticate(ctx, r, scheme)
		switch {
		case err != nil:
			if p != nil {
				t.Fatalf("principal %+v returned with error %v", p, err)
			}
			if !fuzzErrIs(err, security.ErrMalformed, security.ErrInvalid, security.ErrCSRF) {
				t.Fatalf("error %v wraps none of ErrMalformed, ErrInvalid, ErrCSRF", err)
			}
			return
		case p == nil:
			if len(presented) != 0 {
				t.Fatalf("session cookies %q ignored: neither a principal nor an error", presented)
			}
			return
		}
		if c := p.Credential(security.KindSession); p.Subject != "alice" || c == nil || c.ID() != ns.Session.ID {
			t.Fatalf("principal %s/%v, want alice/%s", p.Subject, p.Credentials, ns.Session.ID)
		}
		if len(presented) != 1 || presented[0] != ns.Cookie || !strings.Contains(cookie, ns.Cookie) {
			t.Fatalf("authenticated by session cookies %q, not exactly the real one %q", presented, ns.Cookie)
		}
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
			return
		}
		proof, cerr := r.Cookie(sessions.CSRFCookie)
		if csrfHeader != ns.CSRF || cerr != nil || proof.Value != ns.CSRF {
			t.Fatalf("%q authenticated without the CSRF proof (header %q, cookie %v)", method, csrfHeader, proof)
		}
		if site != "" && site != "same-origin" && site != "none" {
			t.Fatalf("%q authenticated with Sec-Fetch-Site %q", method, site)
		}
		if origin != "" && !strings.HasSuffix(origin, "://"+host) {
			t.Fatalf("%q authenticated from Origin %q", method, origin)
		}
	})
}

func FuzzAPIKey(f *testing.F) {
	ctx := context.Background()
	keys := apikeys.New(security.NewMemoryStore(nil), security.NewMemoryKeyRecords(nil))
	full, k, err := keys.Create(ctx, "alice", "fuzz", []string{"a:read"})
	if err != nil {
		f.Fatal(err)
	}
	secret := full[strings.LastIndexByte(full, '.')+1:]
	fill := strings.NewReplacer("{key}", full, "{id}", k.ID, "{secret}", secret,
		"{key!}", full[:len(full)-1]+string(guardtest.NonCanonicalLast(f, secret)))
	scheme := &policy.Scheme{Name: "apiKeyAuth", Type: policy.SchemeAPIKeyHeader, Param: "X-API-Key"}

	for _, s := range []string{
		"", "{key}", "sg_", "sg_{id}", "sg_{id}.", "sg_{id}.{secret}", "sg_alice.{id}.{secret}",
		"sk_{id}.{secret}", "SG_{id}.{secret}", "{id}.{secret}",
		"{key}=", "{key}==", "{key}\n", "{key}\r\n", " {key}", "{key} ", "Bearer {key}",
		"sg_{id}." + strings.Repeat("*", 43), "sg_{id}." + strings.Repeat("A", 43),
		"sg_.{secret}", "sg_{id}..{secret}", "sg_{id}.{secret}.x", "sg_{id}.{secret}" + strings.Repeat("A", 300),
		"sg_å{id}.{secret}", "sg_{id}.{secret}A", "{key}\x00", "{key!}",
	} {
		f.Add(s, uint16(0), byte(0))
	}
	f.Add("{key}", uint16(len(full)-1), byte(1)) // non-canonical last character
	f.Add("{key}", uint16(len(full)-1), byte(2))

	f.Fuzz(func(t *testing.T, value string, pos uint16, x byte) {
		value = fuzzFlip(fill.Replace(value), pos, x)
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Header: http.Header{"X-Api-Key": {value}}}
		p, err := keys.Authenticate(ctx, r, scheme)
		switch {
		case err != nil:
			if p != nil {
				t.Fatalf("principal %+v returned with error %v", p, err)
			}
			if !fuzzErrIs(err, security.ErrMalformed, security.ErrInvalid) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrInvalid", err)
			}
		case p == nil:
			t.Fatalf("key %q ignored: neither a principal nor an error", value)
		case value != full:
			t.Fatalf("authenticated by %q, which is not the real key %q", value, full)
		case p.Subject != "alice" || p.Credential(security.KindAPIKey) == nil || p.Credential(security.KindAPIKey).ID() != k.ID:
			t.Fatalf("principal %s/%v, want alice/%s", p.Subject, p.Credentials, k.ID)
		}
	})
}

func FuzzAccessToken(f *testing.F) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store := security.NewMemoryStore(clock)
	priv := ed25519.NewKeyFromSeed([]byte(strings.Repeat("s", ed25519.SeedSize)))
	key, err := tokens.NewKey(priv)
	if err != nil {
		f.Fatal(err)
	}
	ts, err := tokens.New(guardtest.Issuer, guardtest.Audience, key, store, tokens.WithClock(clock))
	if err != nil {
		f.Fatal(err)
	}
	old, err := ts.Login(ctx, "alice", "reader", []string{"a:read"}, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	// Refreshing replaces the first access token: only live's stays valid.
	live, err := ts.Refresh(ctx, old.Refresh, func(string) (string, []string, error) {
		return "reader", []string{"a:read"}, nil
	})
	if err != nil {
		f.Fatal(err)
	}
	seg := strings.Split(live.Access, ".")
	rseg := strings.Split(live.Refresh, ".")
	header := func(alg string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","kid":"` + key.ID + `","typ":"at+jwt"}`))
	}
	hs := header("HS256")
	m := hmac.New(sha256.New, priv.Public().(ed25519.PublicKey))
	m.Write([]byte(hs + "." + seg[1]))
	confused := hs + "." + seg[1] + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	fill := strings.NewReplacer(
		"{token}", live.Access, "{old}", old.Access, "{refresh}", live.Refresh,
		"{h}", seg[0], "{p}", seg[1], "{s}", seg[2], "{rh}", rseg[0], "{rp}", rseg[1], "{rs}", rseg[2],
		"{none}", header("none"), "{hs}", hs, "{confused}", confused,
		"{token!}", live.Access[:len(live.Access)-1]+string(guardtest.NonCanonicalLast(f, seg[2])),
	)

	for _, s := range []string{
		"", ".", "..", "...", "{token}", "{old}", "{refresh}", "{h}.{p}.{s}", "{p}.{h}.{s}", "{h}.{s}.{p}",
		"{s}.{p}.{h}", "{h}.{p}", "{h}.{p}.", "{h}..{s}", ".{p}.{s}", "{h}.{p}.{s}.", "{h}.{p}.{s}.{s}",
		"{none}.{p}.", "{none}.{p}.{s}", "{hs}.{p}.{s}", "{confused}", "{rh}.{rp}.{rs}", "{h}.{rp}.{s}",
		"{rh}.{p}.{rs}", "{h}.{rp}.{rs}", "{token}=", "{token}\n", "{token}\r", " {token}", "Bearer {token}",
		"{h}.{p}.{s}" + strings.Repeat("A", security.MaxTokenBytes), "{h}.{p}.é{s}", "{token!}",
	} {
		f.Add(s, uint16(0), byte(0))
	}
	f.Add("{token}", uint16(len(live.Access)-1), byte(1)) // non-canonical signature
	f.Add("{token}", uint16(len(seg[0])+3), byte(0x20))   // payload byte flipped

	f.Fuzz(func(t *testing.T, raw string, pos uint16, x byte) {
		raw = fuzzFlip(fill.Replace(raw), pos, x)
		c, err := ts.VerifyAccess(ctx, raw)
		if err != nil {
			if c != nil {
				t.Fatalf("claims returned with error %v", err)
			}
			if !errors.Is(err, security.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if raw != live.Access {
			t.Fatalf("accepted %q, which the service did not mint (live token %q)", raw, live.Access)
		}
		if c.Subject != "alice" || c.ID != live.AccessClaims.ID {
			t.Fatalf("claims %s/%s, want alice/%s", c.Subject, c.ID, live.AccessClaims.ID)
		}
	})
}
