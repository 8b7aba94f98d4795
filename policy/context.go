package policy

import "context"

// ContextKey is the context key under which the resolved operation travels.
// A context implementation that carries the operation itself (the guard's
// per-request context does, to allocate once) answers Value(ContextKey{})
// with the *Operation.
type ContextKey struct{}

// NewContext returns a copy of ctx carrying op.
func NewContext(ctx context.Context, op *Operation) context.Context {
	return context.WithValue(ctx, ContextKey{}, op)
}

// FromContext returns the operation the guard resolved for this request, or
// nil when the request did not pass through a guard.
func FromContext(ctx context.Context) *Operation {
	op, _ := ctx.Value(ContextKey{}).(*Operation)
	return op
}
