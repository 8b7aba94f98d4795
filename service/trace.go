package service

// OpenTelemetry traces, configured by the standard variables
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER,
// OTEL_BSP_*, ...) and off when no endpoint is set.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"

	"github.com/specguard/specguard/internal/redact"
)

// newTracerProvider is the tracer provider the OTEL_* variables describe,
// or nil when they name no endpoint (or OTEL_TRACES_EXPORTER=none): then
// nothing is traced, and nothing costs. The endpoint, the protocol and the
// service name come from getenv; the SDK reads the rest from the process
// environment (headers, timeouts, the sampler, the batch processor). A
// failed export is logged, at most once a minute.
func newTracerProvider(ctx context.Context, name string, getenv func(string) string, log *slog.Logger) (*sdktrace.TracerProvider, error) {
	switch exporter := getenv("OTEL_TRACES_EXPORTER"); exporter {
	case "none":
		return nil, nil
	case "", "otlp":
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER: %q: want otlp or none", exporter)
	}
	// The signal's own endpoint is used as it is; the general one is a
	// base to which OTLP/HTTP adds /v1/traces.
	variable, endpoint := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		variable, endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT", getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if endpoint == "" {
		return nil, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: %q: want an http:// or https:// URL", variable, redact.URL(endpoint))
	}
	protocolVar, protocol := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocolVar, protocol = "OTEL_EXPORTER_OTLP_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	// The SDK reads the headers (an API key, a bearer token) from the
	// process's environment, and logs a pair it cannot read to stderr,
	// value and all, then exports without it: refused here, naming the
	// variable and the pair, never its value.
	for _, v := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		if err := otlpHeaders(os.Getenv(v)); err != nil {
			return nil, fmt.Errorf("%s: %v", v, err)
		}
	}
	// The SDK reads the sampler from the process's environment too, and
	// samples every request when it cannot read it ("5%" for a ratio),
	// saying so only where export errors go.
	if err := otelSampler(os.Getenv("OTEL_TRACES_SAMPLER"), os.Getenv("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		return nil, err
	}
	var exp *otlptrace.Exporter
	switch protocol {
	case "", "http/protobuf":
		if variable == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
		}
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
	case "grpc":
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(u.String()))
	default:
		return nil, fmt.Errorf("%s: %q: want http/protobuf or grpc", protocolVar, protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", variable, err)
	}
	// service.name is the service's own unless OTEL_SERVICE_NAME (or
	// OTEL_RESOURCE_ATTRIBUTES) says otherwise.
	attrs := []resource.Option{resource.WithAttributes(attribute.String("service.name", name)), resource.WithFromEnv(), resource.WithTelemetrySDK()}
	if s := getenv("OTEL_SERVICE_NAME"); s != "" {
		attrs = append(attrs, resource.WithAttributes(attribute.String("service.name", s)))
	}
	res, err := resource.New(ctx, attrs...)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %v", err)
	}
	var lastLog atomic.Int64
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if now := time.Now().Unix(); now-lastLog.Load() >= 60 {
			lastLog.Store(now)
			log.Warn("traces not exported (repeats are not logged for a minute)", "endpoint", redact.URL(u.String()), "err", err)
		}
	}))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// otelSampler checks the sampler variables as the SDK reads them: a
// sampler it knows, and a ratio from 0 to 1 for the one that takes an
// argument. An argument beside a sampler that takes none is refused too:
// the SDK ignores it, and a ratio set alone samples every request.
func otelSampler(name, arg string) error {
	name, arg = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(arg)
	switch name {
	case "traceidratio", "parentbased_traceidratio":
		if arg == "" {
			return nil // a ratio of 1
		}
		if v, err := strconv.ParseFloat(arg, 64); err != nil || !(v >= 0 && v <= 1) {
			return fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q: want a ratio from 0 to 1 (0.05 samples 5%% of traces)", arg)
		}
		return nil
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		if arg != "" {
			return fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: set, but OTEL_TRACES_SAMPLER (%q) takes none: a ratio needs OTEL_TRACES_SAMPLER=parentbased_traceidratio or traceidratio", name)
		}
		return nil
	default:
		return fmt.Errorf("OTEL_TRACES_SAMPLER: %q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
	}
}

// otlpHeaders checks a list of OTLP headers (key=value, separated by
// commas, values percent-encoded) as the SDK reads it, saying what is
// wrong with a pair without its value.
func otlpHeaders(list string) error {
	if list == "" {
		return nil
	}
	for i, pair := range strings.Split(list, ",") {
		if strings.TrimSpace(pair) == "" {
			continue // skipped by the SDK too ("a=1,")
		}
		key, value, found := strings.Cut(pair, "=")
		key = strings.TrimSpace(key)
		switch {
		case !found:
			return fmt.Errorf("pair %d has no '=': want key=value pairs separated by commas", i+1)
		case !httpguts.ValidHeaderFieldName(key):
			// Not quoted: a pair written "Authorization: Bearer ..." is all name.
			return fmt.Errorf("pair %d: its name is no header name (letters, digits and !#$%%&'*+-.^_`|~)", i+1)
		}
		if _, err := url.PathUnescape(value); err != nil {
			return fmt.Errorf("pair %d: the value of %s is not percent-encoded (a %% that starts no escape): write %%25 for a %%", i+1, key)
		}
	}
	return nil
}

// tracedTransport makes each outbound call (to an identity provider) a
// client span under the request's, and passes the trace on (W3C
// traceparent).
type tracedTransport struct {
	next   http.RoundTripper
	tracer trace.Tracer
}

func (t tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(req.Context(), req.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("http.request.method", req.Method), attribute.String("server.address", req.URL.Host),
		attribute.String("url.full", req.URL.Scheme+"://"+req.URL.Host+req.URL.Path)))
	defer span.End()
	req = req.Clone(ctx)
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		span.SetStatus(codes.Error, "request failed") // never the error's text: it quotes the URL
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}
