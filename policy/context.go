package policy

import (
	"context"

	"github.com/specguard/specguard/internal/ctxkey"
)

// NewContext returns a copy of ctx carrying op.
func NewContext(ctx context.Context, op *Operation) context.Context {
	return context.WithValue(ctx, ctxkey.Operation, op)
}

// FromContext returns the operation the guard resolved for this request, or
// nil when the request did not pass through a guard.
func FromContext(ctx context.Context) *Operation {
	op, _ := ctx.Value(ctxkey.Operation).(*Operation)
	return op
}
