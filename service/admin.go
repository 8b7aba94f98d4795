package service

// The admin listener: /metrics, and /debug/pprof/ when asked.

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/specguard/specguard/problem"
)

// listenAdmin starts the admin listener (/metrics, and /debug/pprof/ when
// asked) unless SPECGUARD_ADMIN_ADDR is off. It serves until the returned
// server is closed.
func listenAdmin(cfg *Config, m *Metrics, handler slog.Handler, api net.Addr) (*http.Server, string, error) {
	ln, err := bindAdmin(cfg, api)
	if err != nil || ln == nil {
		return nil, "off", err
	}
	srv, addr := serveAdmin(cfg, ln, m, handler)
	return srv, addr, nil
}

// bindAdmin binds the admin listener's address, nil when
// SPECGUARD_ADMIN_ADDR is off.
func bindAdmin(cfg *Config, api net.Addr) (net.Listener, error) {
	if cfg.AdminAddr == "off" {
		return nil, nil
	}
	addr := cfg.AdminAddr
	if addr == "auto" {
		addr = autoAdminAddr(cfg.Addr, api)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && cfg.AdminAddr == "auto" {
		return nil, fmt.Errorf("SPECGUARD_ADMIN_ADDR: %v (auto: 127.0.0.1 and the API's port + 1000); set it to a free address, or off", err)
	}
	if err != nil {
		return nil, fmt.Errorf("SPECGUARD_ADMIN_ADDR: %v", err)
	}
	return ln, nil
}

// serveAdmin serves the admin handler on ln until the returned server is
// closed.
func serveAdmin(cfg *Config, ln net.Listener, m *Metrics, handler slog.Handler) (*http.Server, string) {
	h, onLoopback := m.AdminHandler(cfg.AdminPprof), loopback(ln.Addr().String())
	if onLoopback {
		h = loopbackHostOnly(h)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// As the API's listener, but with no bound on writing: a CPU
		// profile or trace takes as long as it is asked to.
		ReadTimeout:    30 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(handler, slog.LevelWarn),
		// As the API's: OPTIONS * goes to the handler (the Host check).
		DisableGeneralOptionsHandler: true,
	}
	go srv.Serve(ln)
	if cfg.AdminPprof && !onLoopback {
		// Profiles cost CPU on demand and show the program's insides: fine
		// behind a private network, not for the internet.
		slog.New(handler).Warn("SPECGUARD_ADMIN_PPROF: /debug/pprof/ is served on a non-loopback address, to anyone who can reach it; keep SPECGUARD_ADMIN_ADDR private or on loopback",
			"admin", ln.Addr().String())
	}
	return srv, ln.Addr().String()
}

// loopbackHostOnly answers only requests whose Host is a loopback name or
// address (localhost, a name under .localhost, which browsers keep on
// loopback themselves, 127.0.0.1, [::1]): a listener on loopback is meant for this machine, and a page a
// browser here loads from a name that an attacker re-points to 127.0.0.1
// (DNS rebinding) would otherwise read it.
func loopbackHostOnly(next http.Handler) http.Handler {
	return loopbackHostOnlyAs(nil, next)
}

// loopbackHostOnlyAs is loopbackHostOnly answering its refusal as p's
// problem (as text when p is nil: the admin listener's).
func loopbackHostOnlyAs(p *problem.Writer, next http.Handler) http.Handler {
	const detail = "this listener answers loopback hosts only"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := strings.ToLower(r.Host) // names are case-insensitive: LOCALHOST is localhost
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !loopback(net.JoinHostPort(strings.Trim(host, "[]"), "0")) && !strings.HasSuffix(host, ".localhost") {
			if p == nil {
				http.Error(w, detail, http.StatusMisdirectedRequest)
				return
			}
			p.Write(w, &problem.Problem{Type: "misdirected-request", Title: "Misdirected request", Status: http.StatusMisdirectedRequest, Detail: detail})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// autoAdminAddr is the admin address "auto" names for the API's address
// as configured (SPECGUARD_ADDR) and as bound (api): loopback (the admin
// listener is never public by default) and the API's port + 1000, so that
// instances on one host on neighbouring ports do not collide, nor the
// default's with Prometheus's own 9090; a free port when the API's was
// configured as 0 (its bound port + 1000 could be anyone's), or when that
// would pass 65535.
func autoAdminAddr(configured string, api net.Addr) string {
	port := 0
	_, given, _ := net.SplitHostPort(configured)
	n, err := strconv.Atoi(given)
	systemChosen := given == "" || err == nil && n == 0 // 0, 00 or none; a named port ("http") is not
	if tcp, ok := api.(*net.TCPAddr); ok && !systemChosen && tcp.Port > 0 && tcp.Port+1000 <= 65535 {
		port = tcp.Port + 1000
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
