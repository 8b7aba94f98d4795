// Package clientspan starts and ends the OpenTelemetry client spans of the
// calls a request makes (a rate-limit round trip, a store call, a query),
// the same way in every package: nothing at all without a tracer, and a
// failed call marked with its class, never the error's text (it may quote
// a value, a key or a URL).
package clientspan

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Start starts the client span name of a call to system (db.system.name)
// doing op (db.operation.name) under ctx's span; with a nil tracer it
// returns ctx and a nil span, and costs nothing.
func Start(ctx context.Context, tracer trace.Tracer, name, system, op string) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, nil
	}
	return tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", system), attribute.String("db.operation.name", op)))
}

// End ends span (nothing when it is nil), marked failed with class when
// the call failed.
func End(span trace.Span, failed bool, class string) {
	if span == nil {
		return
	}
	if failed {
		span.SetStatus(codes.Error, class)
	}
	span.End()
}
