package policy

import "context"

type ctxKey struct{}

// NewContext returns a copy of ctx carrying op.
func NewContext(ctx context.Context, op *Operation) context.Context {
	return context.WithValue(ctx, ctxKey{}, op)
}

// FromContext returns the operation the guard resolved for this request, or
// nil when the request did not pass through a guard.
func FromContext(ctx context.Context) *Operation {
	op, _ := ctx.Value(ctxKey{}).(*Operation)
	return op
}
