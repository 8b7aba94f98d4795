package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/policy"
)

// A login whose password check is interrupted by a disable of the account
// (on this instance or another: the state is the database's and the
// store's) must not leave a working credential behind: whatever comes back
// is refused at its first use.
func TestDisableWhilePasswordIsChecked(t *testing.T) {
	cfg, err := LoadConfig(nil, func(k string) string {
		if k == "SPECGUARD_DATA_DIR" {
			return t.TempDir()
		}
		return ""
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	table, err := policy.Compile(SpecSource, api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := buildDeps(ctx, cfg, table, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.BcryptCost = 4
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
	for _, tc := range []struct {
		name  string
		login func(email string) *httptest.ResponseRecorder
		use   func(w *httptest.ResponseRecorder) *httptest.ResponseRecorder
	}{
		{"login", func(email string) *httptest.ResponseRecorder {
			return do("POST", "/auth/login", "application/json", `{"email":"`+email+`","password":"correct horse battery"}`)
		}, func(w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			_ = json.Unmarshal(w.Body.Bytes(), &tok)
			return do("GET", "/me", "", "", "Authorization", "Bearer "+tok.AccessToken)
		}},
		{"password grant", func(email string) *httptest.ResponseRecorder {
			return do("POST", "/auth/token", "application/x-www-form-urlencoded",
				url.Values{"grant_type": {"password"}, "username": {email}, "password": {"correct horse battery"}}.Encode())
		}, func(w *httptest.ResponseRecorder) *httptest.ResponseRecorder {
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			_ = json.Unmarshal(w.Body.Bytes(), &tok)
			return do("GET", "/me", "", "", "Authorization", "Bearer "+tok.AccessToken)
		}},
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
