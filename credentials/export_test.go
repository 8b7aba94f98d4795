package credentials

import "context"

// WithPasswordChecked runs f after a password matched and before a
// credential is minted: tests race account changes against it.
func WithPasswordChecked(f func(ctx context.Context, a *Account)) Option {
	return func(c *config) { c.passwordChecked = f }
}
