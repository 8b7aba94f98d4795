package service

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// /debug/pprof/ on an admin address that is not loopback is said in the
// log when the server starts; on loopback, or without pprof, nothing is.
func TestPprofOffLoopbackWarns(t *testing.T) {
	for _, c := range []struct {
		addr  string
		pprof bool
		warn  bool
	}{
		{"127.0.0.1:0", true, false},
		{"0.0.0.0:0", false, false},
		{"0.0.0.0:0", true, true},
	} {
		var logs strings.Builder
		srv, addr, err := listenAdmin(&Config{AdminAddr: c.addr, AdminPprof: c.pprof}, NewMetrics(), slog.NewTextHandler(&logs, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if warned := strings.Contains(logs.String(), "level=WARN msg=\"SPECGUARD_ADMIN_PPROF: /debug/pprof/ is served on a non-loopback address"); warned != c.warn {
			t.Errorf("admin %s (bound %s), pprof %v: warned %v, want %v; log:\n%s", c.addr, addr, c.pprof, warned, c.warn, logs.String())
		}
	}
}

// The admin listener bounds what a client may send and how long it may
// sit idle, as the API's does (it had a header timeout alone).
func TestAdminListenerBounds(t *testing.T) {
	srv, _, err := listenAdmin(&Config{AdminAddr: "127.0.0.1:0"}, NewMetrics(), slog.NewTextHandler(io.Discard, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.ReadTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("read timeout %v, idle timeout %v, header bytes %d; want each bounded", srv.ReadTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}

// An admin listener on loopback answers loopback hosts only: a page that
// an attacker's name, re-pointed to 127.0.0.1, loads in a browser here
// (DNS rebinding) read the metrics, and the profiles with pprof on.
func TestAdminOnLoopbackAnswersLoopbackHostsOnly(t *testing.T) {
	srv, addr, err := listenAdmin(&Config{AdminAddr: "127.0.0.1:0", AdminPprof: true}, NewMetrics(), slog.NewTextHandler(io.Discard, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, port, _ := net.SplitHostPort(addr)
	for host, want := range map[string]int{
		addr: 200, "localhost:" + port: 200, "LocalHost:" + port: 200, "App.LOCALHOST:" + port: 200, "[::1]:" + port: 200, "127.0.0.1": 200,
		"rebind.example:" + port: http.StatusMisdirectedRequest, "10.0.0.1:" + port: http.StatusMisdirectedRequest,
	} {
		for _, path := range []string{"/metrics", "/debug/pprof/"} {
			req, err := http.NewRequest("GET", "http://"+addr+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s with Host %s: %d, want %d", path, host, resp.StatusCode, want)
			}
		}
	}
}

// The admin listener's profiles are runtime/pprof's, as go tool pprof
// reads them; nothing is registered on http.DefaultServeMux, which a
// program linking this package may serve (net/http/pprof's init put every
// profile there, cmdline unredacted).
func TestPprofServedOnTheAdminListenerOnly(t *testing.T) {
	if _, pattern := http.DefaultServeMux.Handler(httptest.NewRequest("GET", "/debug/pprof/cmdline", nil)); pattern != "" {
		t.Errorf("http.DefaultServeMux serves /debug/pprof/cmdline (pattern %q)", pattern)
	}
	srv, addr, err := listenAdmin(&Config{AdminAddr: "127.0.0.1:0", AdminPprof: true}, NewMetrics(), slog.NewTextHandler(io.Discard, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}
	for _, c := range []struct {
		path, kind, holds string
		code              int
	}{
		{"/debug/pprof/", "text/plain", "heap (", 200},
		{"/debug/pprof/goroutine?debug=1", "text/plain", "goroutine profile:", 200},
		{"/debug/pprof/heap?gc=1", "application/octet-stream", "", 200},
		{"/debug/pprof/profile?seconds=0.2", "application/octet-stream", "", 200},
		{"/debug/pprof/trace?seconds=0.2", "application/octet-stream", "go 1.", 200},
		{"/debug/pprof/cmdline", "text/plain", "", 200},
		{"/debug/pprof/nosuch", "text/plain", "unknown profile", 404},
		{"/debug/pprof/profile?seconds=forever", "text/plain", "seconds", 400},
		{"/debug/pprof/profile?seconds=NaN", "text/plain", "seconds", 400},
		{"/debug/pprof/heap?seconds=5", "text/plain", "delta profiles", 400},
	} {
		code, kind, body := get(c.path)
		if code != c.code || !strings.HasPrefix(kind, c.kind) || !strings.Contains(body, c.holds) || (code == 200 && body == "" && c.path != "/debug/pprof/cmdline") {
			t.Errorf("GET %s: %d %s, %d bytes (%.40q), want %d %s holding %q", c.path, code, kind, len(body), body, c.code, c.kind, c.holds)
		}
	}
	// A form posted is not read (it was, into memory: FormValue): a
	// profile is asked for by GET (helper-175).
	resp, err := http.Post("http://"+addr+"/debug/pprof/profile", "application/x-www-form-urlencoded", strings.NewReader("seconds=forever&pad="+strings.Repeat("x", 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /debug/pprof/profile with a form: %d, want 405", resp.StatusCode)
	}
}

// auto is loopback and the API's port + 1000; a free port when the API's
// was given as 0 (its bound port + 1000 could be anyone's); and when the
// port + 1000 is taken, the start stops saying it was auto's.
func TestAutoAdminAddr(t *testing.T) {
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	port := api.Addr().(*net.TCPAddr).Port
	if port+1000 > 65535 {
		t.Skipf("the system gave port %d, whose + 1000 passes 65535", port)
	}
	for _, given := range []string{"127.0.0.1:0", "127.0.0.1:00", "127.0.0.1:"} {
		ln, err := bindAdmin(&Config{Addr: given, AdminAddr: "auto"}, api.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if got := ln.Addr().(*net.TCPAddr); got.Port == port+1000 || !got.IP.IsLoopback() {
			t.Errorf("API given as %s, bound %d: admin %s, want a free loopback port", given, port, got)
		}
		ln.Close()
	}
	if got := autoAdminAddr("127.0.0.1:http", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}); got != "127.0.0.1:1080" {
		t.Errorf("API given as a named port, bound 80: %s, want 127.0.0.1:1080", got)
	}
	given := api.Addr().String()
	ln, err := bindAdmin(&Config{Addr: given, AdminAddr: "auto"}, api.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if got := ln.Addr().(*net.TCPAddr); got.Port != port+1000 {
		t.Errorf("API at %s: admin %s, want port %d", given, got, port+1000)
	}
	// Taken: by the listener just bound.
	_, err = bindAdmin(&Config{Addr: given, AdminAddr: "auto"}, api.Addr())
	ln.Close()
	if err == nil || !strings.Contains(err.Error(), "(auto: 127.0.0.1 and the API's port + 1000); set it to a free address, or off") {
		t.Errorf("port + 1000 taken: %v, want refused naming auto", err)
	}
}
