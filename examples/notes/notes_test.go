package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/policy"
)

// notes is the service over loopback, with the table its guard enforces:
// the tests read limits and scopes from the document, not from here.
type notes struct {
	*httptest.Server
	limit func(op, tier string) int
}

func start(t *testing.T) *notes {
	t.Helper()
	users, err := newUsers(bcrypt.MinCost, map[string][2]string{
		"alice": {"writer", "alice-password"},
		"bob":   {"reader", "bob-password"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, table, err := newHandler(config{users: users})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &notes{Server: srv, limit: func(op, tier string) int {
		for _, tr := range table.Operation(op).Limits {
			if tr.Name == tier {
				return int(tr.Limit)
			}
		}
		t.Fatalf("%s has no tier %s in the document", op, tier)
		return 0
	}}
}

func (n *notes) do(t *testing.T, method, path, token, body string) (*http.Response, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, n.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := n.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp, m, string(raw)
}

func (n *notes) login(t *testing.T, name string) string {
	t.Helper()
	resp, m, raw := n.do(t, "POST", "/login", "", fmt.Sprintf(`{"name":%q,"password":%q}`, name, name+"-password"))
	if resp.StatusCode != 200 {
		t.Fatalf("login %s: %d %s", name, resp.StatusCode, raw)
	}
	return m["access_token"].(string)
}

func TestNotes(t *testing.T) {
	n := start(t)
	if resp, _, raw := n.do(t, "GET", "/health", "", ""); resp.StatusCode != 200 || raw != "ok" {
		t.Fatalf("health: %d %q", resp.StatusCode, raw)
	}
	// Without a token: the guard answers, with the realm and problem type
	// prefix the service chose.
	resp, m, _ := n.do(t, "GET", "/notes", "", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="notes"` ||
		m["type"] != "https://notes.example.com/problems/unauthenticated" {
		t.Fatalf("no token: %d %q %v", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), m)
	}
	if resp, m, _ := n.do(t, "POST", "/login", "", `{"name":"alice","password":"nope"}`); resp.StatusCode != 401 ||
		m["type"] != "https://notes.example.com/problems/wrong-password" {
		t.Fatalf("wrong password: %d %v", resp.StatusCode, m)
	}

	// The login's answer holds a token: no cache may keep it (helper-188:
	// the guard marks only authenticated callers' answers so).
	if resp, m, _ := n.do(t, "POST", "/login", "", `{"name":"alice","password":"alice-password"}`); resp.StatusCode != 200 ||
		m["access_token"] == nil || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("login: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	alice := n.login(t, "alice")
	if resp, m, raw := n.do(t, "POST", "/notes", alice, `{"text":"hello"}`); resp.StatusCode != 201 || m["text"] != "hello" {
		t.Fatalf("alice writes: %d %s", resp.StatusCode, raw)
	}
	if resp, _, raw := n.do(t, "GET", "/notes", alice, ""); resp.StatusCode != 200 || !strings.Contains(raw, `"text":"hello"`) ||
		resp.Header.Get("RateLimit-Policy") == "" {
		t.Fatalf("alice reads: %d %s %v", resp.StatusCode, raw, resp.Header)
	}

	// bob is a reader: his token lacks notes:write, and he sees only his
	// own notes.
	bob := n.login(t, "bob")
	resp, _, _ = n.do(t, "POST", "/notes", bob, `{"text":"mine"}`)
	if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="notes:write"`) {
		t.Fatalf("bob writes: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _, raw := n.do(t, "GET", "/notes", bob, ""); resp.StatusCode != 200 || raw != "[]\n" {
		t.Fatalf("bob reads: %d %q", resp.StatusCode, raw)
	}

	// The request is validated against the document before the handler.
	if resp, m, _ := n.do(t, "POST", "/notes", alice, `{"text":""}`); resp.StatusCode != 400 ||
		!strings.Contains(fmt.Sprint(m["errors"]), "body.text") {
		t.Fatalf("empty note: %d %v", resp.StatusCode, m)
	}
}

// The limits are the document's: alice's writes stop at the writes tier,
// and logins from one address at the login tier.
func TestNotesLimits(t *testing.T) {
	n := start(t)
	alice := n.login(t, "alice")
	writes := n.limit("createNote", "writes")
	for i := range writes {
		if resp, _, raw := n.do(t, "POST", "/notes", alice, `{"text":"x"}`); resp.StatusCode != 201 {
			t.Fatalf("write %d of %d: %d %s", i+1, writes, resp.StatusCode, raw)
		}
	}
	resp, m, _ := n.do(t, "POST", "/notes", alice, `{"text":"x"}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || fmt.Sprint(m["violated-policies"]) != "[writes]" {
		t.Fatalf("write %d: %d %v %v", writes+1, resp.StatusCode, resp.Header, m)
	}

	logins := n.limit("login", "login") - 1 // alice logged in once
	for range logins {
		n.do(t, "POST", "/login", "", `{"name":"bob","password":"wrong"}`)
	}
	if resp, _, _ := n.do(t, "POST", "/login", "", `{"name":"bob","password":"bob-password"}`); resp.StatusCode != 429 {
		t.Fatalf("login past the login tier: %d, want 429", resp.StatusCode)
	}
}

// The example's document is a model: lint finds nothing in it.
func TestNotesDocumentLintsClean(t *testing.T) {
	errs, warnings := policy.Lint("openapi.yaml", spec)
	for _, e := range errs {
		t.Error(e)
	}
	for _, w := range warnings {
		t.Error(w)
	}
}

// The example is wired only through specguard's public packages: it
// imports neither the example app (server/, api/) nor internal helpers,
// and nothing it depends on imports the example app either.
func TestNotesUsesPublicPackagesOnly(t *testing.T) {
	public := map[string]bool{"guard": true, "limits": true, "policy": true, "problem": true, "security": true, "security/tokens": true, "examples/notes/api": true}
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if rest, ours := strings.CutPrefix(imp, "github.com/specguard/specguard/"); ours && !public[rest] {
			t.Errorf("the notes example imports %s", imp)
		}
	}
	out, err = exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/specguard/specguard/server") || dep == "github.com/specguard/specguard/api/gen" {
			t.Errorf("the notes example depends on %s", dep)
		}
	}
}

// An unknown name costs the same bcrypt work as a user's: its dummy hash
// has the users' cost, whatever that is.
func TestDummyHashHasTheUsersCost(t *testing.T) {
	for _, cost := range []int{bcrypt.MinCost, bcrypt.MinCost + 2} {
		users, err := newUsers(cost, map[string][2]string{"alice": {"writer", "alice-password"}})
		if err != nil {
			t.Fatal(err)
		}
		dummy, err := dummyHash(users)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := bcrypt.Cost(dummy); got != cost {
			t.Errorf("users at cost %d: the dummy hash has cost %d", cost, got)
		}
	}
}
