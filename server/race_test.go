package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/internal/testenv"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// A login whose password check is interrupted by a disable of the account
// (on this instance or another: the state is the database's and the
// store's) must not leave a working credential behind: whatever comes back
// is refused at its first use.
func TestDisableWhilePasswordIsChecked(t *testing.T) {
	d := testDeps(t, map[string]string{"SPECGUARD_DATA_DIR": t.TempDir()})
	d.Argon2 = Argon2{Memory: 1024, Time: 1, Threads: 1}
	var disable func(ctx context.Context, id string)
	d.passwordChecked = func(ctx context.Context, u *User) {
		if disable != nil {
			disable(ctx, u.ID)
		}
	}
	h, err := NewHandler(d)
	if err != nil {
		t.Fatal(err)
	}
	app, err := NewApp(d)
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, contentType, body string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "192.0.2.1:1234"
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	// withToken calls GET /me with the access token of a token response.
	withToken := func(w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &tok)
		return do("GET", "/me", "", "", "Authorization", "Bearer "+tok.AccessToken)
	}
	for _, tc := range []struct {
		name  string
		login func(email string) *httptest.ResponseRecorder
		use   func(w *httptest.ResponseRecorder) *httptest.ResponseRecorder
	}{
		{"login", func(email string) *httptest.ResponseRecorder {
			return do("POST", "/auth/login", "application/json", `{"email":"`+email+`","password":"correct horse battery"}`)
		}, withToken},
		{"password grant", func(email string) *httptest.ResponseRecorder {
			return do("POST", "/auth/token", "application/x-www-form-urlencoded",
				url.Values{"grant_type": {"password"}, "username": {email}, "password": {"correct horse battery"}}.Encode())
		}, withToken},
		{"browser session", func(email string) *httptest.ResponseRecorder {
			return do("POST", "/auth/session", "application/json", `{"email":"`+email+`","password":"correct horse battery"}`)
		}, func(w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
			var cookies []string
			for _, c := range w.Result().Cookies() {
				cookies = append(cookies, c.Name+"="+c.Value)
			}
			return do("GET", "/me", "", "", "Cookie", strings.Join(cookies, "; "))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			email := strings.ReplaceAll(tc.name, " ", "-") + "@example.com"
			if w := do("POST", "/auth/register", "application/json", `{"email":"`+email+`","password":"correct horse battery"}`); w.Code != 201 {
				t.Fatalf("register: %d %s", w.Code, w.Body)
			}
			disabled := false
			disable = func(ctx context.Context, id string) {
				if _, err := app.endAll(ctx, id, func(u *User) { u.Disabled = true }); err != nil {
					t.Errorf("disable: %v", err)
				}
				disabled = true
			}
			defer func() { disable = nil }()
			w := tc.login(email)
			if !disabled {
				t.Fatal("the password check did not run")
			}
			switch w.Code {
			case 401, 400: // refused outright (400: the OAuth2 invalid_grant)
				return
			case 200, 201:
				if got := tc.use(w); got.Code != 401 {
					t.Errorf("a credential minted while its account was disabled: first use %d, want 401: %s", got.Code, got.Body)
				}
			default:
				t.Fatalf("%s: %d %s", tc.name, w.Code, w.Body)
			}
		})
	}
}

// testDeps builds what Run serves from env, on the example spec; it is
// closed when the test ends.
func testDeps(t *testing.T, env map[string]string) *Deps {
	t.Helper()
	if env["SPECGUARD_REDIS_URL"] != "" && env["SPECGUARD_USERS_FILE"] == "" {
		env["SPECGUARD_USERS_FILE"] = testenv.DemoUsersFile(t) // no demo accounts outside development
	}
	cfg, err := LoadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	table, err := policy.Compile(SpecSource, api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	d, err := buildDeps(context.Background(), cfg, table, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// failingCommits is a repository whose account updates, while fail is set,
// publish their new state and then fail to commit, as a database that goes
// away between the two would.
type failingCommits struct {
	Repository
	fail bool
	// failReads, when set, makes reading an account fail, as putting the
	// store back after a failed commit must read it.
	failReads bool
}

func (r *failingCommits) User(ctx context.Context, id string) (*User, error) {
	if r.failReads {
		return nil, fmt.Errorf("%w: the database went away", security.ErrUnavailable)
	}
	return r.Repository.User(ctx, id)
}

func (r *failingCommits) UpdateUser(ctx context.Context, id string, change func(*User) error, publish func(*User) error) (*User, error) {
	if !r.fail {
		return r.Repository.UpdateUser(ctx, id, change, publish)
	}
	_, err := r.Repository.UpdateUser(ctx, id, change, func(u *User) error {
		if err := publish(u); err != nil {
			return err
		}
		return fmt.Errorf("%w: commit failed", security.ErrUnavailable)
	})
	return nil, err
}

// A change published to the store whose commit then failed never lets an
// instance decide with it: the store is set back to the database's state,
// and the next change takes a version no state ever had, so an instance
// that cached the abandoned state sees it is stale.
func TestFailedCommitIsNeverEnforced(t *testing.T) {
	dir, redisURL, key := t.TempDir(), redistest.Start(t).URL, keytest.File(t)
	instance := func() (*Deps, http.Handler, *failingCommits) {
		d := testDeps(t, map[string]string{"SPECGUARD_DATA_DIR": dir, "SPECGUARD_REDIS_URL": redisURL, "SPECGUARD_SIGNING_KEY_FILE": key})
		repo := &failingCommits{Repository: d.Repo}
		d.Repo, d.Argon2 = repo, Argon2{Memory: 1024, Time: 1, Threads: 1}
		h, err := NewHandler(d)
		if err != nil {
			t.Fatal(err)
		}
		return d, h, repo
	}
	_, x, xRepo := instance()
	_, y, _ := instance()
	ip := 0
	do := func(h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
		ip++
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", ip%250+1)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	token := func(h http.Handler, email, password string) string {
		w := do(h, "POST", "/auth/login", `{"email":"`+email+`","password":"`+password+`"}`)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &tok) != nil {
			t.Fatalf("login %s: %d %s", email, w.Code, w.Body)
		}
		return "Bearer " + tok.AccessToken
	}
	admin := token(x, "admin@example.com", "admin-password")
	// The moderator's token holds users:read.
	mod := token(x, "moderator@example.com", "moderator-password")
	var me struct{ Id string }
	_ = json.Unmarshal(do(x, "GET", "/me", "", "Authorization", mod).Body.Bytes(), &me)
	if w := do(x, "GET", "/admin/users", "", "Authorization", mod); w.Code != 200 {
		t.Fatalf("moderator lists users on X: %d", w.Code)
	}
	if w := do(y, "GET", "/admin/users", "", "Authorization", mod); w.Code != 200 {
		t.Fatalf("moderator lists users on Y: %d", w.Code)
	}

	// On X a demotion is published, then its commit fails: 503, and the
	// moderator is still a moderator everywhere.
	xRepo.fail = true
	if w := do(x, "PATCH", "/admin/users/"+me.Id, `{"role":"user"}`, "Authorization", admin); w.Code != 503 {
		t.Fatalf("a demotion whose commit failed: %d %s, want 503", w.Code, w.Body)
	}
	xRepo.fail = false
	for name, h := range map[string]http.Handler{"X": x, "Y": y} {
		if w := do(h, "GET", "/admin/users", "", "Authorization", mod); w.Code != 200 {
			t.Errorf("after the failed demotion, the moderator on %s: %d, want 200 (the database was not changed)", name, w.Code)
		}
	}
	// On Y a demotion that commits: the next request narrows everywhere.
	if w := do(y, "PATCH", "/admin/users/"+me.Id, `{"role":"user"}`, "Authorization", admin); w.Code != 200 {
		t.Fatalf("demotion on Y: %d %s", w.Code, w.Body)
	}
	for name, h := range map[string]http.Handler{"X": x, "Y": y} {
		if w := do(h, "GET", "/admin/users", "", "Authorization", mod); w.Code != 403 {
			t.Errorf("after the demotion, the former moderator on %s: %d, want 403", name, w.Code)
		}
	}
	// And back: a promotion whose commit fails leaves no wider grant.
	xRepo.fail = true
	if w := do(x, "PATCH", "/admin/users/"+me.Id, `{"role":"moderator"}`, "Authorization", admin); w.Code != 503 {
		t.Fatalf("a promotion whose commit failed: %d, want 503", w.Code)
	}
	xRepo.fail = false
	for name, h := range map[string]http.Handler{"X": x, "Y": y} {
		if w := do(h, "GET", "/admin/users", "", "Authorization", mod); w.Code != 403 {
			t.Errorf("after the failed promotion, on %s: %d, want 403 (the database says user)", name, w.Code)
		}
	}
}

// A change published whose commit failed, and whose repair failed too,
// left its version in the store: a login meanwhile was minted at it, and
// once the store forgot the state, the next change took the same version,
// so a logout everywhere at that version spared the credential. Credentials
// are minted at the version the database committed now: every later
// change's NotBefore passes it.
func TestFailedCommitVersionIsNeverMintedAt(t *testing.T) {
	redisSrv := redistest.Start(t)
	d := testDeps(t, map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_REDIS_URL": redisSrv.URL, "SPECGUARD_SIGNING_KEY_FILE": keytest.File(t)})
	repo := &failingCommits{Repository: d.Repo}
	d.Repo, d.Argon2 = repo, Argon2{Memory: 1024, Time: 1, Threads: 1}
	// Ending every credential relies on the account's NotBefore; deleting
	// the records is tidying, which may fail (it is logged): it does here.
	d.Store = untidyStore{d.Store}
	h, err := NewHandler(d)
	if err != nil {
		t.Fatal(err)
	}
	ip := 0
	do := func(method, path, body string, header ...string) *httptest.ResponseRecorder {
		ip++
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", ip%250+1)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	login := func(email, password string) (string, int) {
		w := do("POST", "/auth/login", `{"email":"`+email+`","password":"`+password+`"}`)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &tok)
		return "Bearer " + tok.AccessToken, w.Code
	}
	admin, _ := login("admin@example.com", "admin-password")
	before, code := login("user@example.com", "user-password")
	if code != 200 {
		t.Fatalf("login: %d", code)
	}
	var me struct{ Id string }
	_ = json.Unmarshal(do("GET", "/me", "", "Authorization", before).Body.Bytes(), &me)

	// A promotion is published, its commit fails, and so does putting the
	// store back: the store holds a version the database never reached.
	repo.fail, repo.failReads = true, true
	if w := do("PATCH", "/admin/users/"+me.Id, `{"role":"moderator"}`, "Authorization", admin); w.Code != 503 {
		t.Fatalf("a promotion whose commit failed: %d %s, want 503", w.Code, w.Body)
	}
	repo.fail, repo.failReads = false, false
	during, code := login("user@example.com", "user-password")
	if code != 200 && code != 503 {
		t.Fatalf("a login while the store holds the uncommitted version: %d", code)
	}
	// The store forgets the account's state (as it does after AccountTTL);
	// then the user logs out everywhere.
	rdb := redisSrv.Client(t)
	keys, err := rdb.Keys(context.Background(), "*{u:"+me.Id+"}:acct").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("the account's mirror in Redis: %v %v", keys, err)
	}
	rdb.Del(context.Background(), keys...)
	if w := do("POST", "/auth/logout-all", "", "Authorization", before); w.Code != 204 {
		t.Fatalf("logout-all: %d %s", w.Code, w.Body)
	}
	if code == 200 {
		if w := do("GET", "/me", "", "Authorization", during); w.Code != 401 {
			t.Errorf("a token minted while the store held the uncommitted version, after logout everywhere: %d, want 401", w.Code)
		}
	}
	if w := do("GET", "/me", "", "Authorization", before); w.Code != 401 {
		t.Errorf("the token from before, after logout everywhere: %d, want 401", w.Code)
	}
}

// untidyStore fails RevokeSubject, the tidying after a logout everywhere.
type untidyStore struct{ security.Store }

func (untidyStore) RevokeSubject(context.Context, string) error {
	return fmt.Errorf("%w: a Redis blip", security.ErrUnavailable)
}
