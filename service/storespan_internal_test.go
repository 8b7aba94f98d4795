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

// A store's answer that a record is gone, or a refresh reused, is no
// failure of the store: its span was marked failed while the metrics did
// not count it (helper-174). A store down still is one.
func TestStoreSpanFailsOnlyForTheStore(t *testing.T) {
	s := &meteredStore{next: security.NewMemoryStore(nil), m: NewMetrics(), store: "redis"}
	for _, c := range []struct {
		err    error
		failed bool
	}{
		{security.ErrNotFound, false},
		{security.ErrReused, false},
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
	}
}
