//go:build !specguard_testclock

// The e2e build's appClock is a clock of its own: this test counts the default's readings.

package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/clock"
	"github.com/specguard/specguard/service"
)

// The service as built, on its embedded default (the memory stores, the
// metered security store, specguard's credentials), reads the clock once
// per guarded request: every store and cache on it takes the guard's
// reading. The readings of the system clock (clock.System) are counted.
func TestOneClockReadPerServedRequest(t *testing.T) {
	var reads, ahead atomic.Int64
	saved := clock.System
	clock.System = func() time.Time { reads.Add(1); return time.Now().Add(time.Duration(ahead.Load())) }
	t.Cleanup(func() { clock.System = saved })

	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off"}
	srv, err := service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	send := func(method, path, body, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "192.0.2.1:1234"
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		srv.Handler.ServeHTTP(w, req)
		return w
	}
	creds := `{"email":"clock@example.com","password":"correct horse battery"}`
	if w := send("POST", "/auth/register", creds, ""); w.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	w := send("POST", "/auth/login", creds, "")
	var pair struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &pair); err != nil || pair.AccessToken == "" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	// The first presentation verifies the token's signature.
	if w := send("GET", "/me", "", pair.AccessToken); w.Code != http.StatusOK {
		t.Fatalf("GET /me: %d %s", w.Code, w.Body)
	}
	for range 3 {
		before := reads.Load()
		if w := send("GET", "/me", "", pair.AccessToken); w.Code != http.StatusOK {
			t.Fatalf("GET /me: %d %s", w.Code, w.Body)
		}
		if n := reads.Load() - before; n != 1 {
			t.Fatalf("GET /me with a cached token read the clock %d times, want 1", n)
		}
	}
	// Readings no test could count would be of a clock of the service's
	// own: its credentials are on the system's, by which the token expired
	// (15 minutes) here.
	ahead.Store(int64(16 * time.Minute))
	if w := send("GET", "/me", "", pair.AccessToken); w.Code != http.StatusUnauthorized {
		t.Fatalf("GET /me 16 minutes later by the system clock: %d, want 401 (the service has a clock of its own?)", w.Code)
	}
}
