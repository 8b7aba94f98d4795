package guard

// Tracing: one OpenTelemetry server span per request, named by its route,
// that says what the guard decided; child spans for its steps
// (authenticate, limit, validate, handler), under which the stores' and
// the handler's own spans nest. Off unless WithTracerProvider is given:
// then the guard makes no OpenTelemetry call at all.

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/specguard/specguard/policy"
)

// The attributes of the server span the guard adds to OpenTelemetry's
// semantic conventions (http.route, http.request.method,
// http.response.status_code).
const (
	AttrOperation = "specguard.operation" // the operationId
	AttrDecision  = "specguard.decision"  // "allow", or the status of the guard's refusal: "400", "401", "403", "404", "405", "413", "429", "503"
	AttrScheme    = "specguard.scheme"    // the scheme(s) that admitted the request
	AttrTier      = "specguard.tier"      // the tier(s) that refused it, on 429
)

// WithTracerProvider traces every request: a server span named by its
// route ("GET /posts/{id}") that continues the caller's W3C traceparent,
// with the decision's attributes, and a child span per step. Refused
// requests are traced too.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(g *Guard) {
		if tp != nil {
			g.tracer = tp.Tracer("github.com/specguard/specguard/guard")
		}
	}
}

// traceContext reads the caller's traceparent (and tracestate).
var traceContext = propagation.TraceContext{}

// reqTrace is one traced request: its server span and what the guard
// decided.
type reqTrace struct {
	tracer  trace.Tracer
	span    trace.Span
	w       *statusWriter
	orig    http.ResponseWriter // the writer the guard was given: the observer's
	allowed bool                // the handler ran
	panic   bool                // the handler panicked
	open    trace.Span          // the step's span not yet ended, if one is
	opened  uint32              // steps started: says which one open is
}

// serveTraced is ServeHTTP with a server span around it. The span records
// no path (it may carry an id or a token): its name and http.route are
// the route.
func (g *Guard) serveTraced(w http.ResponseWriter, r *http.Request) {
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	method := r.Method
	if !knownMethod(method) {
		// Any token is a method to net/http: a client would name spans
		// without end (OpenTelemetry's conventions say _OTHER).
		method = "_OTHER"
	}
	ctx, span := g.tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method)))
	tr := &reqTrace{tracer: g.tracer, span: span, w: &statusWriter{ResponseWriter: w, status: http.StatusOK}, orig: w}
	defer func() {
		if p := recover(); p != nil {
			// The recoverer outside answers 500: the span says so. A
			// step that panicked (an authenticator of the app's) is
			// ended too.
			if tr.open != nil {
				tr.open.End()
			}
			tr.panic = true
			tr.end()
			panic(p)
		}
		tr.end()
	}()
	g.serve(tr.w, r.WithContext(ctx), tr)
}

// knownMethod reports whether m is one of HTTP's methods (RFC 9110 and
// PATCH).
func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// observed is the writer the observer is given: the one the guard was
// given, whatever the guard wrapped it in.
func (t *reqTrace) observed(w http.ResponseWriter) http.ResponseWriter {
	if t == nil {
		return w
	}
	return t.orig
}

// route names the span by the operation the request resolved to.
func (t *reqTrace) route(op *policy.Operation) {
	if t == nil {
		return
	}
	t.span.SetName(op.Method + " " + op.Path)
	t.span.SetAttributes(attribute.String("http.route", op.Path), attribute.String(AttrOperation, op.ID))
}

// stepContext starts the child span of one step of the guard under ctx:
// it returns the context carrying it, and the function that ends it.
func (t *reqTrace) stepContext(ctx context.Context, name string) (context.Context, func()) {
	if t == nil {
		return ctx, nothing
	}
	ctx, span := t.tracer.Start(ctx, name)
	t.opened++
	n := t.opened
	t.open = span
	return ctx, func() {
		span.End()
		// By number: spans are not comparable (a span not recorded,
		// as a sampler leaves most, holds a slice).
		if t.opened == n {
			t.open = nil
		}
	}
}

// step is stepContext for a step that takes the request: r carrying the
// span's context (a copy of r when tracing).
func (t *reqTrace) step(r *http.Request, name string) (*http.Request, func()) {
	if t == nil {
		return r, nothing
	}
	ctx, end := t.stepContext(r.Context(), name)
	return r.WithContext(ctx), end
}

func nothing() {}

// admitted records the scheme that admitted the request.
func (t *reqTrace) admitted(scheme string) {
	if t != nil && scheme != "" {
		t.span.SetAttributes(attribute.String(AttrScheme, scheme))
	}
}

// refusedBy records the tiers that refused the request.
func (t *reqTrace) refusedBy(tiers []string) {
	if t != nil {
		t.span.SetAttributes(attribute.String(AttrTier, strings.Join(tiers, ",")))
	}
}

// handler marks that the request reached the handler: the guard allowed
// it, whatever the handler answers.
func (t *reqTrace) handler(r *http.Request) (*http.Request, func()) {
	t.allowed = true
	return t.step(r, "handler")
}

func (t *reqTrace) end() {
	status := t.w.status
	if t.panic {
		status = http.StatusInternalServerError
	}
	decision := "allow"
	if !t.allowed {
		decision = strconv.Itoa(status)
	}
	t.span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String(AttrDecision, decision))
	if status >= 500 {
		t.span.SetStatus(codes.Error, http.StatusText(status))
	}
	t.span.End()
}
