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

// IsContextKey reports whether key is the one FromContext looks up, so a
// context type that carries the operation itself (the guard's per-request
// context does, to allocate once) can answer Value(key) with it.
func IsContextKey(key any) bool {
	_, ok := key.(ctxKey)
	return ok
}
