package service

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The OTEL_* variables turn tracing on and say how; a value the SDK would
// not understand stops the start with the variable named, rather than
// tracing nothing in silence.
func TestTracerFromEnvironment(t *testing.T) {
	for _, c := range []struct {
		env     map[string]string
		on      bool
		wantErr string
	}{
		{env: map[string]string{}},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: `OTEL_EXPORTER_OTLP_PROTOCOL: "http/json": want http/protobuf or grpc`},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"},
			wantErr: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "thrift"`},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, wantErr: `OTEL_EXPORTER_OTLP_ENDPOINT: "127.0.0.1:4318": want an http:// or https:// URL`},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector"}, wantErr: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "collector": want an http:// or https:// URL`},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: `OTEL_TRACES_EXPORTER: "zipkin": want otlp or none`},
	} {
		tp, err := newTracerProvider(context.Background(), "svc", func(k string) string { return c.env[k] }, slog.New(slog.DiscardHandler))
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: error %v, want one line containing %q", c.env, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%v: %v", c.env, err)
		case (tp != nil) != c.on:
			t.Errorf("%v: tracing on = %v, want %v", c.env, tp != nil, c.on)
		}
		if tp != nil {
			_ = tp.Shutdown(context.Background())
		}
	}
}

// An outbound call (discovery, keys, introspection) is a client span
// under the request's, and the provider receives the trace.
func TestTracedTransport(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, parent := tp.Tracer("test").Start(context.Background(), "GET /me")
	c := &http.Client{Transport: tracedTransport{next: http.DefaultTransport, tracer: tp.Tracer("test")}}
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/introspect?token=secret", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	var client sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			client = s
		}
	}
	if client == nil || client.Parent().SpanID() != parent.SpanContext().SpanID() || client.Status().Code != codes.Error {
		t.Fatalf("client span %v, want one under the request's, failed (503)", client)
	}
	if want := "00-" + client.SpanContext().TraceID().String() + "-" + client.SpanContext().SpanID().String() + "-01"; got != want {
		t.Errorf("the provider got traceparent %q, want %q", got, want)
	}
	for _, kv := range client.Attributes() {
		if strings.Contains(kv.Value.String(), "secret") {
			t.Errorf("the span carries the query string: %s=%s", kv.Key, kv.Value.String())
		}
	}
}

// A collector that cannot be reached is said in the log, with its URL's
// secrets masked: a password and a key in its query alike.
func TestTraceExportFailureMasksTheEndpoint(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	// The batcher's own export (its failure goes to the error handler,
	// where ForceFlush's is returned), soon.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "500")
	env := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tenant:S3CRET@127.0.0.1:1/v1/traces?api_key=QKEY123"}
	tp, err := newTracerProvider(context.Background(), "svc", func(k string) string { return env[k] }, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	_, span := tp.Tracer("t").Start(context.Background(), "op")
	span.End()
	said := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "traces not exported")
	}
	for deadline := time.Now().Add(30 * time.Second); !said() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "traces not exported") || strings.Contains(logs.String(), "S3CRET") || strings.Contains(logs.String(), "QKEY123") {
		t.Errorf("log:\n%s\nwant the failure said, the password and the key masked", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// The OTLP headers (an API key, a bearer token) are read by the SDK from
// the process's environment: a pair it could not read was logged to
// stderr, value and all, and the traces exported without it. Such a pair
// stops the start, naming the variable and the pair, not the value.
func TestOTLPHeadersRefusedWithoutTheirValue(t *testing.T) {
	on := func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return "http://127.0.0.1:4318"
		}
		return ""
	}
	for _, c := range []struct {
		variable, value, want string
	}{
		{"OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret%ZZ", "OTEL_EXPORTER_OTLP_HEADERS: pair 1: the value of authorization is not percent-encoded"},
		{"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=a,Authorization: Bearer s3cret", "OTEL_EXPORTER_OTLP_TRACES_HEADERS: pair 2 has no '='"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "Authorization: Bearer s3cret=x", "OTEL_EXPORTER_OTLP_HEADERS: pair 1: its name is no header name"},
		{"OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret,x-team=a%20b", ""},
		// An empty pair, as a trailing comma makes, the SDK skips too.
		{"OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret,", ""},
	} {
		t.Setenv(c.variable, c.value)
		tp, err := newTracerProvider(context.Background(), "svc", on, slog.New(slog.DiscardHandler))
		if tp != nil {
			_ = tp.Shutdown(context.Background())
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s=%s: %v", c.variable, c.value, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret")):
			t.Errorf("%s=%s: %v, want %q and nothing of the value", c.variable, c.value, err, c.want)
		}
		t.Setenv(c.variable, "")
	}
}

// The SDK reads the sampler from the environment and, when it cannot (a
// ratio written "5%", a misspelt sampler), samples every request, saying
// so only where export errors go, at warn: such a setting stops the start,
// naming the variable (helper-146).
func TestSamplerRefusedWhenTheSDKWouldSampleAll(t *testing.T) {
	on := func(k string) string {
		if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			return "http://127.0.0.1:4318"
		}
		return ""
	}
	for _, c := range []struct {
		sampler, arg, want string
	}{
		{"parentbased_traceidratio", "5%", `OTEL_TRACES_SAMPLER_ARG: "5%": want a ratio from 0 to 1`},
		{"traceidratio", "5", `OTEL_TRACES_SAMPLER_ARG: "5": want a ratio`},
		{"traceidratio", "NaN", `OTEL_TRACES_SAMPLER_ARG: "NaN": want a ratio`},
		{"traceidratio", "-0.1", `OTEL_TRACES_SAMPLER_ARG: "-0.1": want a ratio`},
		{"parentbased_traceidraito", "0.05", `OTEL_TRACES_SAMPLER: "parentbased_traceidraito": want always_on`},
		{"", "0.05", `OTEL_TRACES_SAMPLER_ARG: set, but OTEL_TRACES_SAMPLER ("") takes none`},
		{"always_on", "0.05", `OTEL_TRACES_SAMPLER_ARG: set, but OTEL_TRACES_SAMPLER ("always_on") takes none`},
		{"parentbased_traceidratio", "0.05", ""},
		{" ParentBased_TraceIDRatio ", " 1 ", ""},
		{"traceidratio", "", ""},
		{"parentbased_always_off", "", ""},
		{"", "", ""},
	} {
		t.Setenv("OTEL_TRACES_SAMPLER", c.sampler)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", c.arg)
		tp, err := newTracerProvider(context.Background(), "svc", on, slog.New(slog.DiscardHandler))
		if tp != nil {
			_ = tp.Shutdown(context.Background())
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q, %q: %v", c.sampler, c.arg, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%q, %q: %v, want %q", c.sampler, c.arg, err, c.want)
		}
	}
}
