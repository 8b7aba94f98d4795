package service

import (
	"io"
	"log/slog"
	"net"
	"net/http"
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
		addr: 200, "localhost:" + port: 200, "[::1]:" + port: 200, "127.0.0.1": 200,
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
