package credentials_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/sqldb"
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

// A login by the address an account registered with finds that account.
// The SQL store's look-up of keys kept from before a normalisation took
// an older form of the address first, and that form can be another
// account's current key: "Ά\u0345@example.com" (key άι@example.com)
// has ᾴ@example.com as its NFKC, the key of an account of its own, whose
// password then opened the victim's logins (helper-190).
func TestLoginFindsTheAccountOfItsOwnAddress(t *testing.T) {
	for _, b := range []backend{{"memory", memoryRecords, memoryState}, {"sqlite", sqlRecords(sqldb.SQLite), memoryState}, {"postgres", sqlRecords(sqldb.Postgres), memoryState}} {
		t.Run(b.name, func(t *testing.T) {
			e := onBackend(t, b)
			victim, other := "\u0386\u0345@example.com", "\u1fb4@example.com"
			if k1, k2 := credentials.EmailKey(victim), credentials.EmailKey(other); k1 == k2 {
				t.Fatalf("one key %q", k1)
			}
			for _, r := range []string{`{"email":"` + victim + `","password":"victim-password-1"}`, `{"email":"` + other + `","password":"other-password-1"}`} {
				if r := e.json("POST", "/auth/register", r); r.code != 201 {
					t.Fatalf("register: %d %s", r.code, r.raw)
				}
			}
			r := e.json("POST", "/auth/login", `{"email":"`+victim+`","password":"victim-password-1"}`)
			if r.code != 200 {
				t.Errorf("the victim logs in with the address it registered: %d %s", r.code, r.raw)
			} else if me := e.do("GET", "/me", "", "", bearer(r.body["access_token"].(string))...); me.body["email"] != victim {
				t.Errorf("/me: %s, want the victim's account", me.raw)
			}
			if r := e.json("POST", "/auth/login", `{"email":"`+victim+`","password":"other-password-1"}`); r.code == 200 {
				t.Errorf("the victim's address with the other account's password: 200")
			}
		})
	}
}
