package guard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

const tracedDoc = `openapi: 3.0.3
info: {title: traced, version: "1"}
paths:
  /notes/{id}:
    get:
      operationId: getNote
      parameters: [{name: id, in: path, required: true, schema: {type: string, maxLength: 8}}]
      security: [{key: []}]
      x-rate-limit: {name: per-key, limit: 2, window: 1m, key: principal, who: authenticated}
      responses: {'200': {description: ok}, '400': {description: bad}, '401': {description: no}, '429': {description: slow down}}
  /notes:
    post:
      operationId: addNote
      security: []
      x-rate-limit: false
      requestBody: {required: true, content: {application/json: {schema: {type: object, required: [text], properties: {text: {type: string}, lang: {type: string, default: en}}}}}}
      responses: {'200': {description: ok}, '400': {description: bad}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
`

// Every request is one server span named by its route that continues the
// caller's traceparent and says what the guard decided, with a child span
// per step; refused requests too.
func TestTraces(t *testing.T) {
	table, err := policy.Compile("traced.yaml", []byte(tracedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/notes/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	r.Post("/notes", func(w http.ResponseWriter, r *http.Request) {
		// A streaming handler asserts the writer flushes, as SSE code does.
		if _, ok := w.(http.Flusher); !ok {
			http.Error(w, "no http.Flusher behind the guard", http.StatusInternalServerError)
			return
		}
		// The length it is told is the body's, defaults filled in.
		b, _ := io.ReadAll(r.Body)
		if int64(len(b)) != r.ContentLength {
			http.Error(w, fmt.Sprintf("ContentLength %d, body %d bytes", r.ContentLength, len(b)), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(b)
	})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	g, err := guard.New(table, r, guard.WithTracerProvider(tp), guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keyring{"k": {Subject: "ann"}}))
	if err != nil {
		t.Fatal(err)
	}
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	send := func(path, key string) int {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("traceparent", parent)
		if key != "" {
			req.Header.Set("X-Key", key)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		return w.Code
	}
	// The validator reads the body: the handler, under its own span,
	// still gets all of it, and can flush; with answers checked too (one
	// body checked, one not).
	reported, err := guard.New(table, r, guard.WithTracerProvider(tp), guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keyring{"k": {Subject: "ann"}}),
		guard.WithResponseValidation(guard.ResponsesReport, nil), guard.WithResponseSample(2))
	if err != nil {
		t.Fatal(err)
	}
	body := `{"text":"hello"}`
	for i, h := range []http.Handler{g, reported, reported} {
		req := httptest.NewRequest("POST", "/notes", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"text":"hello"`) {
			t.Fatalf("traced POST %d: %d %q, want 200 and the body echoed", i, w.Code, w.Body)
		}
	}
	rec.Reset()
	for i, c := range []struct {
		path, key string
		status    int
		decision  string
		extra     attribute.KeyValue
	}{
		{"/notes/a", "k", 200, "allow", attribute.String(guard.AttrScheme, "key")},
		{"/notes/a", "", 401, "401", attribute.KeyValue{}},
		{"/notes/much-too-long", "k", 400, "400", attribute.KeyValue{}},
		{"/notes/a", "k", 429, "429", attribute.String(guard.AttrTier, "per-key")},
	} {
		if got := send(c.path, c.key); got != c.status {
			t.Fatalf("request %d: %d, want %d", i, got, c.status)
		}
		var server sdktrace.ReadOnlySpan
		children := map[string]bool{}
		for _, s := range rec.Ended() {
			if s.SpanKind().String() == "server" {
				server = s
			}
		}
		for _, s := range rec.Ended() {
			if server != nil && s.Parent().SpanID() == server.SpanContext().SpanID() {
				children[s.Name()] = true
			}
		}
		rec.Reset()
		if server == nil || server.Name() != "GET /notes/{id}" || server.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
			server.Parent().SpanID().String() != "00f067aa0ba902b7" {
			t.Fatalf("request %d: server span %v, want GET /notes/{id} continuing the traceparent", i, server)
		}
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range server.Attributes() {
			attrs[kv.Key] = kv.Value
		}
		for _, want := range []attribute.KeyValue{
			attribute.String(guard.AttrOperation, "getNote"), attribute.String(guard.AttrDecision, c.decision),
			attribute.String("http.route", "/notes/{id}"), attribute.Int("http.response.status_code", c.status), c.extra,
		} {
			if want.Key != "" && attrs[want.Key] != want.Value {
				t.Errorf("request %d: %s = %v, want %v", i, want.Key, attrs[want.Key].String(), want.Value.String())
			}
		}
		if !children["authenticate"] || !children["limit"] || (c.status == 200) != children["handler"] || (c.status == 200 || c.status == 400) != children["validate"] {
			t.Errorf("request %d: child spans %v", i, children)
		}
	}
}

// markedWriter is a ResponseWriter an observer recognises.
type markedWriter struct{ http.ResponseWriter }

// Traced, the observer still gets the writer the guard was given (a
// service's request state), and a handler's panic shows as a 500 on the
// server span, not as the 200 nothing wrote.
func TestTracedObserverAndPanic(t *testing.T) {
	table, err := policy.Compile("traced.yaml", []byte(tracedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/notes/{id}", func(http.ResponseWriter, *http.Request) { panic("the handler failed") })
	r.Post("/notes", func(http.ResponseWriter, *http.Request) {})
	rec := tracetest.NewSpanRecorder()
	var observedMarked bool
	g, err := guard.New(table, r, guard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keyring{"k": {Subject: "ann"}}),
		guard.WithObserver(func(w http.ResponseWriter, _ *http.Request, _ guard.Event) { _, observedMarked = w.(markedWriter) }))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/notes/a", nil)
	req.Header.Set("X-Key", "k")
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the handler's panic did not reach the recoverer outside")
			}
		}()
		g.ServeHTTP(markedWriter{httptest.NewRecorder()}, req)
	}()
	if !observedMarked {
		t.Error("the observer was given the guard's own writer, not the one the guard was given")
	}
	spans := rec.Ended()
	server := spans[len(spans)-1]
	for _, kv := range server.Attributes() {
		if kv.Key == "http.response.status_code" && kv.Value.AsInt64() != 500 {
			t.Errorf("a panicking handler's span says %d, want 500", kv.Value.AsInt64())
		}
	}
	if server.Status().Code.String() != "Error" {
		t.Errorf("a panicking handler's span status %v, want Error", server.Status())
	}
}

// panicky is an authenticator of the app's that panics.
type panicky struct{}

func (panicky) Authenticate(context.Context, *http.Request, *policy.Scheme) (*security.Principal, error) {
	panic("the authenticator failed")
}

// A step that panics (an app's authenticator) has its span ended with the
// server span: none is left open.
func TestTracedStepPanic(t *testing.T) {
	table, err := policy.Compile("traced.yaml", []byte(tracedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/notes/{id}", func(http.ResponseWriter, *http.Request) {})
	r.Post("/notes", func(http.ResponseWriter, *http.Request) {})
	rec := tracetest.NewSpanRecorder()
	g, err := guard.New(table, r, guard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, panicky{}))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/notes/a", nil)
	req.Header.Set("X-Key", "k")
	func() {
		defer func() { _ = recover() }()
		g.ServeHTTP(httptest.NewRecorder(), req)
	}()
	ended := map[string]bool{}
	for _, s := range rec.Ended() {
		ended[s.Name()] = true
	}
	for _, s := range rec.Started() {
		if !ended[s.Name()] {
			t.Errorf("span %q started, never ended", s.Name())
		}
	}
	if !ended["authenticate"] {
		t.Errorf("the authenticate span did not end: %v", ended)
	}
}

// A request the sampler leaves unrecorded (a caller's traceparent saying
// not sampled, a ratio's share) is served as any other: its spans are
// not comparable values, and comparing them panicked into a 500.
func TestUnsampledRequestsAreServed(t *testing.T) {
	table, err := policy.Compile("traced.yaml", []byte(tracedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/notes/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	r.Post("/notes", func(http.ResponseWriter, *http.Request) {})
	for name, sampler := range map[string]sdktrace.Sampler{
		"parent based, parent not sampled": sdktrace.ParentBased(sdktrace.AlwaysSample()),
		"never":                            sdktrace.NeverSample(),
		"a ratio of none":                  sdktrace.TraceIDRatioBased(0),
	} {
		g, err := guard.New(table, r, guard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler))),
			guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
			guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keyring{"k": {Subject: "ann"}}))
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/notes/a", nil)
		req.Header.Set("X-Key", "k")
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
		w := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s: the guard panicked: %v", name, p)
				}
			}()
			g.ServeHTTP(w, req)
		}()
		if w.Code != 200 {
			t.Errorf("%s: %d %s, want 200", name, w.Code, w.Body)
		}
	}
}

// A method HTTP does not define names no span: any token is a method to
// net/http, and a client would otherwise name spans without end.
func TestUnknownMethodsNameNoSpan(t *testing.T) {
	table, err := policy.Compile("traced.yaml", []byte(tracedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/notes/{id}", func(http.ResponseWriter, *http.Request) {})
	r.Post("/notes", func(http.ResponseWriter, *http.Request) {})
	rec := tracetest.NewSpanRecorder()
	g, err := guard.New(table, r, guard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keyring{"k": {Subject: "ann"}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"X00000007", "BREW", "get"} {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(m, "/elsewhere", nil))
	}
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("DELETE", "/elsewhere", nil))
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
		for _, a := range s.Attributes() {
			if a.Key == "http.request.method" && a.Value.AsString() != s.Name() {
				t.Errorf("span %s: http.request.method %s", s.Name(), a.Value.AsString())
			}
		}
	}
	if want := "_OTHER _OTHER _OTHER DELETE"; strings.Join(names, " ") != want {
		t.Errorf("server spans %q, want %q", names, want)
	}
}
