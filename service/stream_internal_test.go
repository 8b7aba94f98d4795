package service

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
)

// A handler that streams asks its writer for http.Flusher (server-sent
// events), one that takes the connection for http.Hijacker (WebSocket
// libraries). Behind the service's request log, with answers not checked
// (SPECGUARD_VALIDATE_RESPONSES=off) and tracing off, the writer was the
// log's, which had neither: "streaming unsupported". Answers reported
// went through the guard's checking writer, which has both.
func TestHandlersStreamAndTakeTheConnection(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /events:
    get:
      operationId: events
      security: []
      responses: {'200': {description: ok, content: {text/event-stream: {schema: {type: string}}}}}
  /socket:
    get:
      operationId: socket
      security: []
      responses: {'101': {description: switched}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []guard.ResponseMode{guard.ResponsesOff, guard.ResponsesReport} {
		t.Run(mode.String(), func(t *testing.T) {
			r := chi.NewRouter()
			r.Get("/events", func(w http.ResponseWriter, _ *http.Request) {
				f, ok := w.(http.Flusher)
				if !ok {
					http.Error(w, "streaming unsupported", http.StatusInternalServerError)
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, "data: x\n\n")
				f.Flush()
			})
			r.Get("/socket", func(w http.ResponseWriter, _ *http.Request) {
				h, ok := w.(http.Hijacker)
				if !ok {
					http.Error(w, "hijacking unsupported", http.StatusInternalServerError)
					return
				}
				conn, rw, err := h.Hijack()
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				defer conn.Close()
				_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello")
				_ = rw.Flush()
			})
			g, err := guard.New(table, r, guard.WithResponseValidation(mode, nil))
			if err != nil {
				t.Fatal(err)
			}
			logs := &lockedBuffer{}
			log := slog.New(slog.NewTextHandler(logs, nil))
			srv := httptest.NewServer(logRequests(log, NewMetrics(), recoverer(problem.Writer{}, log, g)))
			defer srv.Close()

			resp, err := http.Get(srv.URL + "/events")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "data: x\n\n" {
				t.Errorf("a handler that flushes: %d %q", resp.StatusCode, body)
			}

			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, _ = io.WriteString(conn, "GET /socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			sresp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			if sresp.StatusCode != http.StatusSwitchingProtocols {
				b, _ := io.ReadAll(sresp.Body)
				t.Errorf("a handler that takes the connection: %d %q", sresp.StatusCode, b)
			}
			// Logged as its handler returns, which the server does not
			// wait for: the connection is no longer its.
			logged := regexp.MustCompile(`path=/socket .*status=101 `)
			for deadline := time.Now().Add(5 * time.Second); !logged.MatchString(logs.String()); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the request whose connection the handler took is not logged 101:\n%s", logs.String())
				}
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer for writers on other goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// plainWriter can neither flush nor be taken over.
type plainWriter struct{ h http.Header }

func (p plainWriter) Header() http.Header         { return p.h }
func (p plainWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p plainWriter) WriteHeader(int)             {}

// A flush through http.ResponseController says why it failed (here the
// writer beneath cannot flush; in service, a client gone): with Flush
// alone, the request log's writer answered every flush nil.
func TestRequestLogFlushSaysWhyItFailed(t *testing.T) {
	st := &reqState{ResponseWriter: plainWriter{h: http.Header{}}}
	if err := http.NewResponseController(st).Flush(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("a flush the writer beneath cannot make: %v, want http.ErrNotSupported", err)
	}
}
