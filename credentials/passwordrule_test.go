package credentials_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
)

// The shortest password the service sets is the document's minLength for
// register's password, checked by the service itself: a document served
// without request validation, and a password set in code (ChangePassword,
// Seed, HashPassword), hold to it too. Without a minLength it is
// DefaultMinPassword. A password set before is not checked at login.
func TestPasswordRule(t *testing.T) {
	const declared = "password: { type: string, minLength: 10, maxLength: 128 }"
	if !bytes.Contains(credentials.Fragment, []byte(declared)) {
		t.Fatalf("the Fragment no longer declares %q: update this test", declared)
	}
	for _, c := range []struct {
		name     string
		schema   string
		min, max int
	}{
		{"the Fragment", declared, 10, 128},
		{"a longer minimum", "password: { type: string, minLength: 12, maxLength: 20 }", 12, 20},
		{"no minLength", "password: { type: string }", credentials.DefaultMinPassword, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := bytes.Replace(credentials.Fragment, []byte(declared), []byte(c.schema), 1)
			e := newEnv(t, spec, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
			// Served without the guard: no request validation.
			r := chi.NewRouter()
			e.svc.Mount(r)
			e.h = r

			short, enough := strings.Repeat("p", c.min-1), strings.Repeat("p", c.min)
			if r := e.json("POST", "/auth/register", `{"email":"a@example.com","password":"`+short+`"}`); r.code != 400 || !strings.Contains(r.raw, "shorter than") {
				t.Errorf("register with %d characters: %d %s, want 400 saying it is too short", len(short), r.code, r.raw)
			}
			if r := e.json("POST", "/auth/register", `{"email":"a@example.com","password":"`+enough+`"}`); r.code != 201 {
				t.Fatalf("register with %d characters: %d %s, want 201", len(enough), r.code, r.raw)
			}
			// Characters, not bytes: é is two bytes.
			if r := e.json("POST", "/auth/register", `{"email":"b@example.com","password":"`+strings.Repeat("é", c.min-1)+`"}`); r.code != 400 {
				t.Errorf("register with %d two-byte characters: %d, want 400", c.min-1, r.code)
			}
			if c.max > 0 {
				if r := e.json("POST", "/auth/register", `{"email":"c@example.com","password":"`+strings.Repeat("p", c.max+1)+`"}`); r.code != 400 || !strings.Contains(r.raw, "longer than") {
					t.Errorf("register with %d characters: %d %s, want 400 saying it is too long", c.max+1, r.code, r.raw)
				}
			}
			id := credentials.SeedID("seeded@example.com")
			// A list with one short password creates no account of it.
			err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "first@example.com", Password: enough, Role: "user"}, {Email: "seeded@example.com", Password: short, Role: "user"}}, nil)
			if err == nil || !strings.Contains(err.Error(), "seeded@example.com") {
				t.Errorf("seeding a short password: %v, want an error naming the user", err)
			}
			if _, err := e.accounts.AccountByEmail(ctx, "first@example.com"); !errors.Is(err, security.ErrNotFound) {
				t.Errorf("the list's valid entry, before the short one: %v, want not created", err)
			}
			if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "seeded@example.com", Password: enough, Role: "user"}}, nil); err != nil {
				t.Fatal(err)
			}
			if err := e.svc.ChangePassword(ctx, id, short); err == nil {
				t.Error("ChangePassword to a short password: accepted")
			}
			if _, err := e.svc.HashPassword(ctx, short); err == nil {
				t.Error("HashPassword of a short password: accepted")
			}
			if err := e.svc.ChangePassword(ctx, id, enough+"!"); err != nil {
				t.Errorf("ChangePassword to %d characters: %v", len(enough)+1, err)
			}
		})
	}
	// A password set before the rule (or as a hash) still logs in.
	e := newEnv(t, nil, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
	hash, err := bcrypt.GenerateFromPassword([]byte("short"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "old@example.com", PasswordHash: string(hash), Role: "user"}}, nil); err != nil {
		t.Fatal(err)
	}
	e.login("old@example.com", "short")
}

// A length declared in an allOf (of the property, or of the body beside a
// plain property) holds as one beside type: string does.
func TestPasswordRuleReadsAllOf(t *testing.T) {
	const declared = "password: { type: string, minLength: 10, maxLength: 128 }"
	for _, c := range []struct {
		name, schema string
		min, max     int
	}{
		{"allOf minLength 8", "password: { allOf: [ { type: string, minLength: 8, maxLength: 128 } ] }", 8, 128},
		{"allOf minLength 16", "password: { allOf: [ { type: string, maxLength: 64 }, { minLength: 16 } ] }", 16, 64},
		{"both", "password: { type: string, minLength: 12, allOf: [ { maxLength: 30 }, { minLength: 11 } ] }", 12, 30},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := bytes.Replace(credentials.Fragment, []byte(declared), []byte(c.schema), 1)
			e := newEnv(t, spec, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil))
			if _, err := e.svc.HashPassword(ctx, strings.Repeat("p", c.min)); err != nil {
				t.Errorf("HashPassword with %d characters, the document's minLength: %v", c.min, err)
			}
			if _, err := e.svc.HashPassword(ctx, strings.Repeat("p", c.min-1)); err == nil {
				t.Errorf("HashPassword with %d characters, below the document's minLength %d: accepted", c.min-1, c.min)
			}
			if _, err := e.svc.HashPassword(ctx, strings.Repeat("p", c.max+1)); err == nil {
				t.Errorf("HashPassword with %d characters, above the document's maxLength %d: accepted", c.max+1, c.max)
			}
		})
	}
}
