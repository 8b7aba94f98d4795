package credentials_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/credentials"
)

// A users file's bcrypt hash of a 72-byte password: bcrypt reads no more,
// so a login with another, longer password sharing those 72 bytes was
// admitted, and its upgrade to argon2id made that other string the
// account's password (the owner's own stopped working). A password of
// more than 72 bytes now never matches a bcrypt hash.
func TestBcryptHashesMatchNoLongerPassword(t *testing.T) {
	e := onBackend(t, backends[0])
	real := strings.Repeat("p", 72)
	h, err := bcrypt.GenerateFromPassword([]byte(real), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "bob@example.com", PasswordHash: string(h), Role: "user"}}, nil); err != nil {
		t.Fatal(err)
	}
	other := real + "Z-not-the-password"
	r := e.json("POST", "/auth/login", `{"email":"bob@example.com","password":"`+other+`"}`)
	if r.code == 200 {
		t.Errorf("login with a %d-byte password that is not the account's: %d, want 401", len(other), r.code)
	}
	if r := e.json("POST", "/auth/login", `{"email":"bob@example.com","password":"`+real+`"}`); r.code != 200 {
		t.Errorf("login with the account's own password afterwards: %d %s, want 200", r.code, r.raw)
	}
}
