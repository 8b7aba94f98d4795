package service

import (
	"io"
	"log/slog"
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
