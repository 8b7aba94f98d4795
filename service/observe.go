package service

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/oidc"
)

// Metrics are the Prometheus series the server exports on its admin
// listener. Labels are bounded: operation ids come from the spec, schemes,
// outcomes, tiers and store calls from fixed sets.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec   // operation, status
	latency    *prometheus.HistogramVec // operation
	auth       *prometheus.CounterVec   // scheme, outcome
	decisions  *prometheus.CounterVec   // operation, tier, decision
	storeTime  *prometheus.HistogramVec // store, call
	storeFails *prometheus.CounterVec   // store, call
	tokens     *prometheus.CounterVec   // event

	providerUp, providerReady *prometheus.GaugeVec   // scheme
	providerFails             *prometheus.CounterVec // scheme
	responseViolations        *prometheus.CounterVec // operation, reason

	cache sync.Map // requestKey, authKey, decisionKey -> the series' child
}

// NewMetrics registers specguard's series, and the Go runtime and process
// collectors, in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "specguard_http_requests_total", Help: "HTTP requests by operation and status.",
		}, []string{"operation", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "specguard_http_request_duration_seconds", Help: "Time to answer a request, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "specguard_auth_total", Help: "Authentication outcomes of guarded requests, by deciding scheme and outcome.",
		}, []string{"scheme", "outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "specguard_ratelimit_decisions_total", Help: "Rate-limit tier decisions, by operation, tier and decision (allowed, limited, store_error).",
		}, []string{"operation", "tier", "decision"}),
		storeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "specguard_store_call_duration_seconds", Help: "Latency of state store calls, by store and call.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, []string{"store", "call"}),
		storeFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "specguard_store_errors_total", Help: "Failed state store calls, by store and call.",
		}, []string{"store", "call"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "specguard_token_events_total", Help: "Token lifecycle events: issued, refreshed, reuse_detected, revoked, revoked_all.",
		}, []string{"event"}),
		providerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "specguard_oidc_provider_up", Help: "1 when the last call to an openIdConnect scheme's provider (discovery, keys, introspection) succeeded, else 0.",
		}, []string{"scheme"}),
		providerReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "specguard_oidc_provider_keys_loaded", Help: "1 once an openIdConnect scheme's keys were fetched: its JWTs are verified even while the provider is down.",
		}, []string{"scheme"}),
		providerFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "specguard_oidc_provider_errors_total", Help: "Failed calls to an openIdConnect scheme's provider.",
		}, []string{"scheme"}),
		responseViolations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "specguard_response_violations_total", Help: "Handler answers that break the document, by operation and reason (status, header, content-type, body).",
		}, []string{"operation", "reason"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.auth, m.decisions, m.storeTime, m.storeFails, m.tokens,
		m.providerUp, m.providerReady, m.providerFails, m.responseViolations,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, ev := range []string{"issued", "refreshed", "reuse_detected", "revoked", "revoked_all"} {
		m.tokens.WithLabelValues(ev) // present at 0 from the start, so rates work
	}
	return m
}

// responseViolations counts and logs the answers that break the document:
// the operation, the status, the reason, the JSON pointer and what the
// document asks there, never a value.
func (m *Metrics) reportResponse(log *slog.Logger, mode guard.ResponseMode) func(*http.Request, *policy.Operation, []guard.ResponseViolation) {
	return func(r *http.Request, op *policy.Operation, vs []guard.ResponseViolation) {
		for _, v := range vs {
			m.responseViolations.WithLabelValues(op.ID, v.Reason).Inc()
			log.WarnContext(r.Context(), "an answer breaks the API description", "operation", op.ID, "status", v.Status, "reason", v.Reason,
				"pointer", v.Pointer, "detail", v.Detail, "validate_responses", mode.String())
		}
	}
}

// providerStatus records a change of an identity provider's state.
func (m *Metrics) providerStatus(st oidc.Status) {
	up, ready := 0.0, 0.0
	if st.Err == nil {
		up = 1
	} else {
		m.providerFails.WithLabelValues(st.Scheme).Inc()
	}
	if st.Ready {
		ready = 1
	}
	m.providerUp.WithLabelValues(st.Scheme).Set(up)
	m.providerReady.WithLabelValues(st.Scheme).Set(ready)
}

// The children of the labelled series, cached: WithLabelValues hashes every
// label on every call, a sync.Map of small keys is cheaper.
type requestKey struct {
	op     *policy.Operation
	status int
}

// decision is what one tier decided for one request.
type decision string

const (
	allowed    decision = "allowed"     // the tier admitted the request
	limited    decision = "limited"     // the tier refused it: 429
	storeError decision = "store_error" // the store failed; on-store-error decided
)

type decisionKey struct {
	op *policy.Operation
	t  *policy.Tier
	d  decision
}

type authKey struct {
	scheme  string
	outcome guard.Outcome
}

type requestSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

func (m *Metrics) observeRequest(op *policy.Operation, status int, elapsed time.Duration) {
	k := requestKey{op, status}
	v, ok := m.cache.Load(k)
	if !ok {
		label := "none"
		if op != nil {
			label = op.ID
		}
		v, _ = m.cache.LoadOrStore(k, &requestSeries{
			count:   m.requests.WithLabelValues(label, strconv.Itoa(status)),
			latency: m.latency.WithLabelValues(label),
		})
	}
	rs := v.(*requestSeries)
	rs.count.Inc()
	rs.latency.Observe(elapsed.Seconds())
}

func (m *Metrics) authCounter(scheme string, outcome guard.Outcome) prometheus.Counter {
	k := authKey{scheme, outcome}
	if v, ok := m.cache.Load(k); ok {
		return v.(prometheus.Counter)
	}
	label := scheme
	if label == "" {
		label = "none"
	}
	v, _ := m.cache.LoadOrStore(k, m.auth.WithLabelValues(label, string(outcome)))
	return v.(prometheus.Counter)
}

func (m *Metrics) decisionCounter(op *policy.Operation, t *policy.Tier, d decision) prometheus.Counter {
	k := decisionKey{op, t, d}
	if v, ok := m.cache.Load(k); ok {
		return v.(prometheus.Counter)
	}
	v, _ := m.cache.LoadOrStore(k, m.decisions.WithLabelValues(op.ID, t.Name, string(d)))
	return v.(prometheus.Counter)
}

// AdminHandler serves /metrics and /debug/pprof/ for the admin listener.
func (m *Metrics) AdminHandler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	if withPprof {
		// GET alone: a form posted would be read into memory (FormValue).
		mux.HandleFunc("GET /debug/pprof/", servePprof)
	}
	return mux
}

// observeStore records one store call.
func (m *Metrics) observeStore(store, call string, elapsed time.Duration, err error) {
	k := storeKey{store, call}
	v, ok := m.cache.Load(k)
	if !ok {
		v, _ = m.cache.LoadOrStore(k, m.storeTime.WithLabelValues(store, call))
	}
	v.(prometheus.Observer).Observe(elapsed.Seconds())
	if err != nil && !storeAnswer(err) {
		m.storeFails.WithLabelValues(store, call).Inc()
	}
}

type storeKey struct{ store, call string }

// reqState is one request's ResponseWriter as logRequests hands it on: it
// records the status written and what the guard and the limiter decided,
// which they report through their observers with this writer. It holds the
// request's context with its id too (RequestID), the id's bytes and the
// header's value, in the same allocation; the request's copy that carries
// the context (WithContext) is one more per request.
type reqState struct {
	http.ResponseWriter
	ctx    idContext
	idBuf  [16]byte  // ctx.id's bytes
	idHdr  [1]string // the X-Request-Id header's value
	status int
	op     *policy.Operation
	auth   guard.Outcome
	scheme string
	sub    string   // the verified caller's subject
	limit  decision // the strictest decision of any tier; "" when none applied
	tier   string   // the tier that decided limit
}

func (s *reqState) WriteHeader(code int) {
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code // an informational answer (103) is not the answer
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *reqState) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *reqState) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush sends what was written on (http.Flusher): a handler that streams
// (server-sent events) asks w for it, whatever wraps the writer under it.
func (s *reqState) Flush() { _ = s.FlushError() }

// FlushError is Flush saying why it failed (a client gone), as
// http.ResponseController asks it.
func (s *reqState) FlushError() error {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return http.NewResponseController(s.ResponseWriter).Flush()
}

// Hijack hands the connection to the handler (http.Hijacker), where the
// writers under it allow it; the request is logged as switching
// protocols (101), its answer the handler's own.
func (s *reqState) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// limitRank orders decisions from least to most strict.
var limitRank = map[decision]int{"": 0, allowed: 1, storeError: 2, limited: 3}

// observeGuard is the guard's observer: it counts what authentication and
// every tier decided, and keeps the request's outcome for its log line.
func (m *Metrics) observeGuard(w http.ResponseWriter, _ *http.Request, ev guard.Event) {
	st, _ := w.(*reqState)
	if st != nil {
		st.op, st.auth, st.scheme = ev.Op, ev.Auth, ev.Scheme
		if ev.Principal != nil {
			st.sub = ev.Principal.Subject
		}
	}
	if m != nil && ev.Auth != guard.AuthPublic {
		m.authCounter(ev.Scheme, ev.Auth).Inc()
	}
	v := &ev.Limits
	for i := range ev.Op.Limits {
		if i >= 64 || v.Applied&(1<<i) == 0 {
			continue
		}
		t := &ev.Op.Limits[i]
		d := allowed
		switch {
		case v.StoreErr != nil:
			d = storeError
		case v.Denied&(1<<i) != 0:
			d = limited
		}
		if st != nil && limitRank[d] > limitRank[st.limit] {
			st.limit, st.tier = d, t.Name
		}
		if m != nil {
			m.decisionCounter(ev.Op, t, d).Inc()
		}
	}
}

// newRequestID returns 16 random hex digits, written into buf: the string
// shares its bytes, which nothing writes again (as strings.Builder shares
// its buffer), and keeps buf's allocation alive.
func newRequestID(buf *[16]byte) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	hex.Encode(buf[:], b[:])
	return unsafe.String(&buf[0], len(buf))
}

// RequestID returns the id the service gave the request whose context ctx
// is (or derives from): its answer's X-Request-Id header carries it, and
// so does every line logged with its context through the service's logger
// (Deps.Log; see requestIDs), so that what a client reports can be found
// in the logs. "" outside a request of the service.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

type requestIDKey struct{}

// idContext is a request's context with its id (RequestID).
type idContext struct {
	context.Context
	id string
}

func (c *idContext) Value(key any) any {
	if key == (requestIDKey{}) {
		return c.id
	}
	return c.Context.Value(key)
}

// requestIDs adds the request's id (RequestID) to every line logged with
// the request's context (slog's ...Context methods), first after the
// message, unless the line names one itself: the lines of the service and
// of the packages it hands its logger (credentials) alike.
type requestIDs struct{ slog.Handler }

func (h requestIDs) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		named := false
		r.Attrs(func(a slog.Attr) bool {
			named = a.Key == "request_id"
			return !named
		})
		if !named {
			with := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
			with.AddAttrs(slog.String("request_id", id))
			r.Attrs(func(a slog.Attr) bool {
				with.AddAttrs(a)
				return true
			})
			r = with
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDs) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDs{h.Handler.WithAttrs(as)}
}
func (h requestIDs) WithGroup(name string) slog.Handler { return requestIDs{h.Handler.WithGroup(name)} }

// requestIDHeader carries the request's id (RequestID) in every answer.
const requestIDHeader = "X-Request-Id"

// logRequests gives every request its id (RequestID), writes one line per
// request to log, unless it is nil (never a credential: the principal's
// subject at most), and counts it in m. The id is the service's own: one a
// client sends is not taken, as it could name another's request.
func logRequests(log *slog.Logger, m *Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{ResponseWriter: w, ctx: idContext{Context: r.Context()}}
		st.ctx.id = newRequestID(&st.idBuf)
		st.idHdr[0] = st.ctx.id
		w.Header()[requestIDHeader] = st.idHdr[:]
		// Deferred: a request whose connection was cut (a panic after its
		// answer began, see recoverer) is counted and logged too.
		defer logRequest(log, m, st, r, start)
		next.ServeHTTP(st, r.WithContext(&st.ctx))
	})
}

// logRequest counts and logs the request st answered, begun at start.
func logRequest(log *slog.Logger, m *Metrics, st *reqState, r *http.Request, start time.Time) {
	elapsed := time.Since(start)
	if st.status == 0 {
		st.status = http.StatusOK
	}
	if m != nil {
		m.observeRequest(st.op, st.status, elapsed)
	}
	if log == nil {
		return
	}
	opID := ""
	if st.op != nil {
		opID = st.op.ID
	}
	attrs := []slog.Attr{
		slog.String("request_id", st.ctx.id),
		slog.String("method", logged(r.Method, 32)), slog.String("path", logged(r.URL.Path, maxLoggedPath)),
		slog.String("operation", opID),
		slog.Int("status", st.status), slog.Duration("duration", elapsed),
	}
	if st.op != nil {
		limit := string(st.limit)
		if limit == "" {
			limit = "none"
		} else if st.limit != allowed {
			limit += ":" + st.tier
		}
		attrs = append(attrs, slog.String("subject", st.sub),
			slog.String("auth", string(st.auth)), slog.String("auth_scheme", st.scheme),
			slog.String("limit", limit))
	}
	log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// maxLoggedPath bounds the path a log line quotes: a request for no
// operation is answered 404 before any rate limit, and its path (up to the
// 16 KiB of a request line, each invalid byte logged as six) must not let
// one client write the log at many times the rate it sends.
const maxLoggedPath = 512

// logged is s, cut to max bytes (at a UTF-8 boundary) and saying so.
func logged(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > max-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut-- // back to the rune it cuts, at most UTFMax-1 bytes
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:cut], len(s))
}
