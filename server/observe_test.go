package server_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
)

// scrape returns the admin listener's /metrics as series -> value.
func scrape(t *testing.T, in *instance) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

type logLine struct {
	Msg, RequestID, Method, Path, Operation, Subject, Auth, AuthScheme, Limit string
	Status                                                                    int
}

func (l *logLine) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	l.Msg, l.RequestID, l.Method, l.Path = str("msg"), str("request_id"), str("method"), str("path")
	l.Operation, l.Subject, l.Auth, l.AuthScheme, l.Limit = str("operation"), str("subject"), str("auth"), str("auth_scheme"), str("limit")
	if s, ok := m["status"].(float64); ok {
		l.Status = int(s)
	}
	return nil
}

func requestLines(t *testing.T, in *instance) []logLine {
	t.Helper()
	var out []logLine
	for _, raw := range strings.Split(in.logs.String(), "\n") {
		var l logLine
		if json.Unmarshal([]byte(raw), &l) == nil && l.Msg == "request" {
			out = append(out, l)
		}
	}
	return out
}

// Metrics on the admin listener and one log line per request say what the
// guard and the limiter decided, on both stores, and never carry a token.
func TestMetricsAndRequestLog(t *testing.T) {
	// The test spends the login tier with logins of one account: that
	// account may hold as many, and the tier earns none back meanwhile.
	_, admits, _ := loginTier(t)
	env := func() map[string]string {
		return map[string]string{"SPECGUARD_MAX_SESSIONS": fmt.Sprint(admits + 10), "SPECGUARD_SPEC_FILE": loginTierNoRefill(t)}
	}
	t.Run("memory", func(t *testing.T) { observability(t, start(t, env()), "memory") })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		e := env()
		e["SPECGUARD_REDIS_URL"], e["SPECGUARD_SIGNING_KEY_FILE"] = srv.URL, keytest.File(t)
		observability(t, start(t, e), "redis")
	})
}

func observability(t *testing.T, in *instance, store string) {
	// What the requests below meet, as the document declares it.
	table := docTable(t)
	meOp, usersOp := spectest.CredentialOp(t, table, "me"), spectest.CredentialOp(t, table, "list-users")
	loginOp, refreshOp := spectest.CredentialOp(t, table, "login"), spectest.CredentialOp(t, table, "refresh")
	userTier := spectest.TierOf(t, meOp, policy.KeyPrincipal, policy.WhoAuthenticated).Name
	anonTier := spectest.TierOf(t, meOp, policy.KeyIP, policy.WhoAnonymous).Name
	loginTier := spectest.TierOf(t, loginOp, policy.KeyIP, policy.WhoAnonymous)
	logins := spectest.Admits(loginTier) // from one address, before the tier refuses
	if logins < 2 {
		t.Fatalf("this test logs in twice from one address, and %s's tier %s admits %d logins", spectest.Describe(loginOp), loginTier.Name, logins)
	}
	bearer, scoped := spectest.BearerScheme(t, meOp), spectest.BearerScheme(t, usersOp)
	series := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }

	before := scrape(t, in)
	tok := login(t, in, "user@example.com", "user-password")
	if resp, _ := in.do(t, "GET", meOp.Path, "", "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
		t.Fatalf("/me: %d", resp.StatusCode)
	}
	forged := tok[:len(tok)-4] + "AAAA"
	if forged == tok { // the signature ended in AAAA
		forged = tok[:len(tok)-4] + "BAAA"
	}
	if resp, _ := in.do(t, "GET", meOp.Path, "", "Authorization", "Bearer "+forged); resp.StatusCode != 401 {
		t.Fatalf("/me with a tampered token: %d", resp.StatusCode)
	}
	if resp, _ := in.do(t, "GET", meOp.Path, ""); resp.StatusCode != 401 {
		t.Fatalf("/me anonymous: %d", resp.StatusCode)
	}
	if resp, _ := in.do(t, "GET", usersOp.Path, "", "Authorization", "Bearer "+tok); resp.StatusCode != 403 {
		t.Fatalf("/admin/users as user: %d", resp.StatusCode)
	}
	var refresh string
	{
		resp, m := in.do(t, "POST", loginOp.Path, `{"email":"moderator@example.com","password":"moderator-password"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		refresh = m["refresh_token"].(string)
	}
	if resp, _ := in.do(t, "POST", refreshOp.Path, `{"refresh_token":"`+refresh+`"}`); resp.StatusCode != 200 {
		t.Fatalf("refresh: %d", resp.StatusCode)
	}
	if resp, _ := in.do(t, "POST", refreshOp.Path, `{"refresh_token":"`+refresh+`"}`); resp.StatusCode != 401 {
		t.Fatalf("refresh token replayed: %d", resp.StatusCode)
	}
	// The logins the tier has left, then one more, which it refuses; with
	// the right password, so that no failed-password budget decides first.
	for range logins - 2 + 1 {
		in.do(t, "POST", loginOp.Path, `{"email":"user@example.com","password":"user-password"}`)
	}

	after := scrape(t, in)
	delta := func(series string) float64 { return after[series] - before[series] }
	for series, want := range map[string]float64{
		series(`specguard_http_requests_total{operation=%q,status="200"}`, meOp.ID):                                        1,
		series(`specguard_http_requests_total{operation=%q,status="401"}`, meOp.ID):                                        2,
		series(`specguard_http_requests_total{operation=%q,status="403"}`, usersOp.ID):                                     1,
		series(`specguard_http_requests_total{operation=%q,status="429"}`, loginOp.ID):                                     1,
		series(`specguard_auth_total{outcome="ok",scheme=%q}`, bearer):                                                     1,
		series(`specguard_auth_total{outcome="invalid",scheme=%q}`, bearer):                                                1,
		`specguard_auth_total{outcome="missing",scheme="none"}`:                                                            1,
		series(`specguard_auth_total{outcome="insufficient_scope",scheme=%q}`, scoped):                                     1,
		series(`specguard_ratelimit_decisions_total{decision="allowed",operation=%q,tier=%q}`, loginOp.ID, loginTier.Name): float64(logins),
		series(`specguard_ratelimit_decisions_total{decision="limited",operation=%q,tier=%q}`, loginOp.ID, loginTier.Name): 1,
		series(`specguard_ratelimit_decisions_total{decision="allowed",operation=%q,tier=%q}`, meOp.ID, userTier):          1,
		series(`specguard_ratelimit_decisions_total{decision="allowed",operation=%q,tier=%q}`, meOp.ID, anonTier):          2,
		`specguard_token_events_total{event="issued"}`:                                                                     float64(logins),
		`specguard_token_events_total{event="refreshed"}`:                                                                  1,
		`specguard_token_events_total{event="reuse_detected"}`:                                                             1,
		`specguard_store_call_duration_seconds_count{call="create_family",store="` + store + `"}`:                          float64(logins),
		`specguard_store_call_duration_seconds_count{call="rotate_family",store="` + store + `"}`:                          2,
		`specguard_store_errors_total{call="rotate_family",store="` + store + `"}`:                                         0,
	} {
		if got := delta(series); got != want {
			t.Errorf("%s rose by %v, want %v", series, got, want)
		}
	}
	if store == "redis" {
		// Three of /me, one of the users, two refreshes, the logins.
		if got, want := delta(`specguard_store_call_duration_seconds_count{call="ratelimit",store="redis"}`), float64(6+logins+1); got < want {
			t.Errorf("Redis rate-limit calls timed: %v, want at least one per limited request (%v)", got, want)
		}
	}
	if after["go_goroutines"] == 0 || after["process_open_fds"] == 0 {
		t.Error("the Go runtime and process collectors are missing")
	}
	if resp, err := http.Get("http://" + in.admin + "/debug/pprof/"); err != nil || resp.StatusCode != 404 {
		t.Errorf("/debug/pprof/ unasked: %v %v, want 404 (pprof is served only with SPECGUARD_ADMIN_PPROF=true)", resp, err)
	} else {
		resp.Body.Close()
	}
	// The admin listener serves nothing of the API, and the API no metrics.
	if resp, _ := in.do(t, "GET", "/metrics", ""); resp.StatusCode != 404 {
		t.Errorf("/metrics on the API listener: %d, want 404", resp.StatusCode)
	}

	lines := requestLines(t, in)
	idFormat := regexp.MustCompile(`^[0-9a-f]{16}$`)
	ids := map[string]bool{}
	var me200, me401, meAnon, listUsers *logLine
	for i := range lines {
		l := &lines[i]
		if !idFormat.MatchString(l.RequestID) || ids[l.RequestID] {
			t.Errorf("request id %q: want 16 hex digits, unique", l.RequestID)
		}
		ids[l.RequestID] = true
		switch {
		case l.Operation == meOp.ID && l.Status == 200:
			me200 = l
		case l.Operation == meOp.ID && l.Auth == "invalid":
			me401 = l
		case l.Operation == meOp.ID && l.Auth == "missing":
			meAnon = l
		case l.Operation == usersOp.ID:
			listUsers = l
		}
	}
	if me200 == nil || me200.Subject == "" || me200.Auth != "ok" || me200.AuthScheme != bearer || me200.Limit != "allowed" || me200.Method != "GET" || me200.Path != meOp.Path {
		t.Errorf("log line of /me 200: %+v", me200)
	}
	if me401 == nil || me401.Subject != "" || me401.Status != 401 || me401.AuthScheme != bearer || me401.Limit != "allowed" {
		t.Errorf("log line of /me with a tampered token: %+v", me401)
	}
	if meAnon == nil || meAnon.Status != 401 || meAnon.AuthScheme != "" {
		t.Errorf("log line of anonymous /me: %+v", meAnon)
	}
	if listUsers == nil || listUsers.Auth != "insufficient_scope" || listUsers.Status != 403 {
		t.Errorf("log line of /admin/users as user: %+v", listUsers)
	}
	var limited bool
	for _, l := range lines {
		limited = limited || l.Operation == loginOp.ID && l.Status == 429 && l.Limit == "limited:"+loginTier.Name && l.Auth == "public"
	}
	if !limited {
		t.Errorf("no log line says the login past %d was limited by %s", logins, loginTier.Name)
	}
	logs := in.logs.String()
	for _, secret := range []string{tok, forged, refresh, tok[strings.LastIndexByte(tok, '.')+1:], "user-password"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("the log contains a credential")
		}
	}
}

// SPECGUARD_LOG_REQUESTS=false drops the request lines (metrics still count).
func TestLogRequestsOff(t *testing.T) {
	in := start(t, map[string]string{"SPECGUARD_LOG_REQUESTS": "false"})
	if resp, _ := in.do(t, "GET", at(t, "me"), ""); resp.StatusCode != 401 {
		t.Fatalf("/me: %d", resp.StatusCode)
	}
	if lines := requestLines(t, in); len(lines) != 0 {
		t.Errorf("%d request lines with SPECGUARD_LOG_REQUESTS=false, want none", len(lines))
	}
	if got := scrape(t, in)[`specguard_http_requests_total{operation="`+spectest.CredentialOp(t, docTable(t), "me").ID+`",status="401"}`]; got != 1 {
		t.Errorf("requests counted: %v, want 1", got)
	}
}

// OPTIONS * is a request like any other: net/http answered it 200
// itself, before the service's handler, with no X-Request-Id, log line or
// metric (nor, in the development setup, the loopback Host check). On
// both listeners.
func TestOptionsStarIsServed(t *testing.T) {
	in := start(t, nil)
	for _, addr := range []string{strings.TrimPrefix(in.base, "http://"), in.admin} {
		before := len(requestLines(t, in))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, "OPTIONS * HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("%s: OPTIONS * with a Host of another name: %d, want it refused", addr, resp.StatusCode)
		}
		if addr != in.admin && (resp.Header.Get("X-Request-Id") == "" || len(requestLines(t, in)) != before+1) {
			t.Errorf("OPTIONS *: X-Request-Id %q, %d request lines logged, want an id and one line", resp.Header.Get("X-Request-Id"), len(requestLines(t, in))-before)
		}
	}
}

// Revocations count as token events; a Redis that stops answering counts
// as store errors and as unavailable authentication.
func TestRevocationAndStoreErrorMetrics(t *testing.T) {
	srv := redistest.StartOwn(t) // stopped
	in := start(t, map[string]string{"SPECGUARD_REDIS_URL": srv.URL, "SPECGUARD_SIGNING_KEY_FILE": keytest.File(t)})
	before := scrape(t, in)
	first := login(t, in, "user@example.com", "user-password")
	second := login(t, in, "user@example.com", "user-password")
	if resp, _ := in.do(t, "POST", at(t, "logout"), "", "Authorization", "Bearer "+first); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := in.do(t, "POST", at(t, "logout-all"), "", "Authorization", "Bearer "+second); resp.StatusCode != 204 {
		t.Fatalf("logout-all: %d", resp.StatusCode)
	}
	third := login(t, in, "user@example.com", "user-password")
	srv.Stop()
	if resp, _ := in.do(t, "GET", at(t, "me"), "", "Authorization", "Bearer "+third); resp.StatusCode != 503 {
		t.Fatalf("/me with Redis down: %d, want 503", resp.StatusCode)
	}
	after := scrape(t, in)
	meOp := spectest.CredentialOp(t, docTable(t), "me")
	userTier := spectest.TierOf(t, meOp, policy.KeyPrincipal, policy.WhoAuthenticated).Name
	for series, want := range map[string]float64{
		`specguard_token_events_total{event="issued"}`:                                                                    3,
		`specguard_token_events_total{event="revoked"}`:                                                                   1,
		`specguard_token_events_total{event="revoked_all"}`:                                                               1,
		`specguard_auth_total{outcome="unavailable",scheme="` + spectest.BearerScheme(t, meOp) + `"}`:                     1,
		`specguard_store_errors_total{call="ratelimit",store="redis"}`:                                                    1,
		`specguard_http_requests_total{operation="` + meOp.ID + `",status="503"}`:                                         1,
		`specguard_ratelimit_decisions_total{decision="store_error",operation="` + meOp.ID + `",tier="` + userTier + `"}`: 1,
	} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s rose by %v, want %v", series, got, want)
		}
	}
}
