package service

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/specguard/specguard/security"
)

// A store's answer (a record gone, a refresh reused, an account version or
// a key's mark it does not hold, a cap reached) is no failure of the
// store, in its span or its metrics: the span was marked failed
// (helper-174), and the metrics counted a version or a mark it lacked
// (helper-180). A store down still is one.
func TestStoreSpanFailsOnlyForTheStore(t *testing.T) {
	s := &meteredStore{next: security.NewMemoryStore(nil), m: NewMetrics(), store: "redis"}
	for _, c := range []struct {
		err    error
		failed bool
	}{
		{security.ErrNotFound, false},
		{security.ErrReused, false},
		{security.ErrStale, false},
		{security.ErrUnmarked, false},
		{security.ErrTooMany, false},
		{nil, false},
		{security.ErrUnavailable, true},
		{errors.New("redis: connection refused"), true},
	} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		s.tracer = tp.Tracer("t")
		_ = s.call(context.Background(), "rotate_family", func(context.Context) error { return c.err })
		ended := rec.Ended()
		if len(ended) != 1 {
			t.Fatalf("%v: %d spans", c.err, len(ended))
		}
		if got := ended[0].Status().Code == codes.Error; got != c.failed {
			t.Errorf("%v: span failed %v, want %v", c.err, got, c.failed)
		}
		if got := storeErrors(t, s.m); (got > 0) != c.failed {
			t.Errorf("%v: specguard_store_errors_total %v, want it counted %v", c.err, got, c.failed)
		}
		s.m = NewMetrics()
	}
}

// storeErrors is the sum of specguard_store_errors_total in m.
func storeErrors(t *testing.T, m *Metrics) float64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() == "specguard_store_errors_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
