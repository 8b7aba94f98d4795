package credentials_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/credentials"
)

// One password typed two ways (a composed ñ on one device, n and a
// combining tilde on another; full-width letters) is one password: it is
// hashed and checked in NFKC (NIST SP 800-63B 5.1.1.2). A hash made of a
// password as typed, before (or given in a users file), still matches it,
// and is made again so that the other forms match too.
func TestPasswordsAreNormalized(t *testing.T) {
	const composed, decomposed = "contrase\u00f1a-segura", "contrasen\u0303a-segura"
	e := onBackend(t, backends[0])
	e.register("ana@example.com", composed)
	for _, pw := range []string{composed, decomposed, "ｃｏｎｔｒａｓｅñａ-ｓｅｇｕｒａ"} {
		if r := e.json("POST", "/auth/login", `{"email":"ana@example.com","password":"`+pw+`"}`); r.code != 200 {
			t.Errorf("login with %q: %d %s, want 200", pw, r.code, r.raw)
		}
	}
	legacy, err := bcrypt.GenerateFromPassword([]byte(decomposed), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "old@example.com", PasswordHash: string(legacy), Role: "user"}}, nil); err != nil {
		t.Fatal(err)
	}
	if r := e.json("POST", "/auth/login", `{"email":"old@example.com","password":"`+composed+`"}`); r.code != 401 {
		t.Errorf("the other form, before the hash made of the typed one was upgraded: %d, want 401", r.code)
	}
	for _, pw := range []string{decomposed, composed} {
		if r := e.json("POST", "/auth/login", `{"email":"old@example.com","password":"`+pw+`"}`); r.code != 200 {
			t.Errorf("login with %q, the hash made of %q: %d %s, want 200", pw, decomposed, r.code, r.raw)
		}
	}
	if r := e.json("POST", "/auth/login", `{"email":"old@example.com","password":"contrasena-segura"}`); r.code != 401 {
		t.Errorf("login without the tilde: %d, want 401", r.code)
	}
}

// The length rule holds for a password as typed and as hashed: one
// character NFKC makes many (U+FDFA is 18) is one character typed.
func TestPasswordRuleCountsTypedCharacters(t *testing.T) {
	e := onBackend(t, backends[0])
	for _, pw := range []string{"\ufdfa", "⒇⒇⒇", "㎒㎒㎒㎒"} {
		if _, err := e.svc.HashPassword(ctx, pw); err == nil || !strings.Contains(err.Error(), "shorter than") {
			t.Errorf("HashPassword(%q), %d characters typed: %v, want shorter than the minimum", pw, utf8.RuneCountInString(pw), err)
		}
	}
	if _, err := e.svc.HashPassword(ctx, strings.Repeat("⒇", 10)); err != nil {
		t.Errorf("ten characters typed: %v", err)
	}
}
