package e2e

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/specguard/specguard/e2e/client"
	"github.com/specguard/specguard/internal/keytest"
)

// otlpReceiver is an OTLP/HTTP trace receiver built on the official OTLP
// protobuf types: it keeps every span it is sent, with its service name.
type otlpReceiver struct {
	mu      sync.Mutex
	spans   []*tracepb.Span
	service string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP/HTTP protobuf trace export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				o.service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// wait returns the spans of trace id once its server span has come.
func (o *otlpReceiver) wait(t *testing.T, traceID string) (server *tracepb.Span, all []*tracepb.Span) {
	t.Helper()
	server = o.waitFor(t, traceID, func(*tracepb.Span) bool { return true })
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			// The children end before the server span: they came with it.
			all = append(all, s)
		}
	}
	return server, all
}

// waitFor returns the first server span of trace id that match accepts.
func (o *otlpReceiver) waitFor(t *testing.T, traceID string, match func(*tracepb.Span) bool) *tracepb.Span {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		o.mu.Lock()
		for _, s := range o.spans {
			if hex.EncodeToString(s.TraceId) == traceID && s.Kind == tracepb.Span_SPAN_KIND_SERVER && match(s) {
				o.mu.Unlock()
				return s
			}
		}
		o.mu.Unlock()
	}
	t.Fatalf("no matching server span of trace %s reached the receiver", traceID)
	return nil
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch {
		case v.GetStringValue() != "":
			out[kv.Key] = v.GetStringValue()
		default:
			out[kv.Key] = strings.TrimSpace(strings.TrimPrefix(v.String(), "int_value:"))
		}
	}
	return out
}

// TestTraces runs the real binary with the standard OTEL_* variables
// against a real OTLP/HTTP receiver: one server span per request, named by
// its route, continuing the caller's traceparent, saying what the guard
// decided; child spans for the guard's steps and for the calls they make
// (Redis, PostgreSQL); refused requests traced too.
func TestTraces(t *testing.T) {
	recv := &otlpReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	in := Start(t, append(Shared(Redis(t), Postgres(t), keytest.File(t)),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+srv.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_BSP_SCHEDULE_DELAY=50",
		"OTEL_SERVICE_NAME=blog-e2e", "OTEL_TRACES_SAMPLER=parentbased_always_on")...)
	c := NewClient(t, in)
	tok := login(t, c, "user@example.com", "user-password")
	me := credentialOp(t, "me")
	const (
		allowed = "4bf92f3577b34da6a3ce929d0e0e4736"
		refused = "5bf92f3577b34da6a3ce929d0e0e4736"
		limited = "6bf92f3577b34da6a3ce929d0e0e4736"
		caller  = "00f067aa0ba902b7"
	)
	parent := func(traceID string) client.RequestEditorFn {
		return Header("traceparent", "00-"+traceID+"-"+caller+"-01")
	}
	r, _ := c.GetMeWithResponse(ctx, Bearer(tok.AccessToken), parent(allowed))
	want(t, "GET /me", r.StatusCode(), 200, r.Body)
	r, _ = c.GetMeWithResponse(ctx, parent(refused))
	want(t, "GET /me without a token", r.StatusCode(), 401, r.Body)
	// Wrong passwords from one address until a tier or budget of the
	// login operation refuses one, as the document sets them.
	other := NewClient(t, in)
	var last *client.LoginResponse
	for i := 0; i < 100 && (last == nil || last.StatusCode() != 429); i++ {
		last, _ = other.LoginWithResponse(ctx, client.LoginRequest{Email: "nobody@example.com", Password: "wrong-password"}, parent(limited))
	}
	want(t, "logins until one is refused", last.StatusCode(), 429, last.Body)

	// Traced, the request log still says what the guard decided.
	if logs := in.logs.String(); !strings.Contains(logs, `"operation":"`+me.ID+`"`) || !strings.Contains(logs, `"auth":"ok"`) {
		t.Errorf("with tracing on, the request log lost the guard's decision:\n%s", logs)
	}

	server, all := recv.wait(t, allowed)
	a := attrs(server.Attributes)
	if server.Name != "GET "+me.Path || hex.EncodeToString(server.ParentSpanId) != caller || a["specguard.operation"] != me.ID ||
		a["specguard.decision"] != "allow" || a["specguard.scheme"] != bearerScheme(t, me) || a["http.route"] != me.Path || a["http.response.status_code"] != "200" {
		t.Errorf("the allowed request's server span: %s %v (parent %x)", server.Name, a, server.ParentSpanId)
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range all {
		byID[hex.EncodeToString(s.SpanId)] = s
	}
	under := func(s *tracepb.Span) string { // the name of its parent
		if p := byID[hex.EncodeToString(s.ParentSpanId)]; p != nil {
			return p.Name
		}
		return ""
	}
	seen := map[string]string{}
	count := map[string]int{}
	for _, s := range all {
		if s != server {
			seen[s.Name] = under(s)
			count[s.Name]++
		}
	}
	// A bearer request on Redis enters each step once: one authentication
	// (which calls no store: the token's check rides in the rate-limit
	// call), one decision, one rate-limit call; every other span is the
	// app's own, under its handler.
	for name, n := range map[string]int{"authenticate": 1, "limit": 1, "ratelimit": 1, "validate": 1, "handler": 1} {
		if count[name] != n {
			t.Errorf("%d %q spans in the allowed request, want %d (spans: %v)", count[name], name, n, count)
		}
	}
	for _, s := range all {
		if p := under(s); s != server && p != server.Name && p != "limit" && p != "handler" {
			t.Errorf("span %q under %q: a step of the guard called out beyond its one rate-limit call", s.Name, p)
		}
	}
	for name, parentName := range map[string]string{"authenticate": server.Name, "limit": server.Name, "handler": server.Name, "ratelimit": "limit"} {
		if seen[name] != parentName {
			t.Errorf("span %s under %q, want under %q (spans: %v)", name, seen[name], parentName, seen)
		}
	}
	db := false
	for name, parentName := range seen {
		db = db || strings.HasSuffix(name, " postgresql") && parentName == "handler"
	}
	if !db {
		t.Errorf("no PostgreSQL span under the handler: %v", seen)
	}
	recv.mu.Lock() // the receiver takes exports while the test reads
	service := recv.service
	recv.mu.Unlock()
	if service != "blog-e2e" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", service)
	}

	server, _ = recv.wait(t, refused)
	if a := attrs(server.Attributes); a["specguard.decision"] != "401" || a["http.response.status_code"] != "401" || a["specguard.operation"] != me.ID {
		t.Errorf("the refused request's server span: %s %v", server.Name, a)
	}
	server = recv.waitFor(t, limited, func(s *tracepb.Span) bool { return attrs(s.Attributes)["http.response.status_code"] == "429" })
	if a := attrs(server.Attributes); a["specguard.decision"] != "429" || a["specguard.tier"] == "" {
		t.Errorf("the limited login's server span: %v, want decision 429 and the tier", a)
	}
}
