package service

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/specguard/specguard/internal/clientspan"
	"github.com/specguard/specguard/security"
)

// meteredStore times every security store call, counts the token
// lifecycle events that pass through it, and traces each call of a
// remote store as a client span when tracing is on.
type meteredStore struct {
	next   security.Store
	m      *Metrics
	store  string       // "memory", "redis", "redis-cluster"
	tracer trace.Tracer // nil: no tracing (and never for the memory store)
}

// call runs one store call, timed, counted and (tracing) traced. The
// store's answers (see storeAnswer) are no failure of it: the metrics and
// the span say so alike.
func (s *meteredStore) call(ctx context.Context, name string, f func(context.Context) error) error {
	start := time.Now()
	var span trace.Span
	if s.tracer != nil { // the span's name is built only when tracing
		ctx, span = clientspan.Start(ctx, s.tracer, s.store+" "+name, "redis", name)
	}
	err := f(ctx)
	failed := err != nil && !storeAnswer(err)
	clientspan.End(span, failed, "store call failed")
	var observed error
	if failed {
		observed = err
	}
	s.m.observeStore(s.store, name, time.Since(start), observed)
	return err
}

// storeAnswer reports whether err is a working store's answer, not its
// failure: a record it does not hold (an account, an ended session, a
// key's mark), a refresh found reused, an account version it does not
// hold, a cap reached.
func storeAnswer(err error) bool {
	for _, answer := range []error{security.ErrNotFound, security.ErrReused, security.ErrStale, security.ErrUnmarked, security.ErrTooMany} {
		if errors.Is(err, answer) {
			return true
		}
	}
	return false
}

func (s *meteredStore) event(name string, err error) {
	if err == nil {
		s.m.tokens.WithLabelValues(name).Inc()
	}
}

func (s *meteredStore) CreateFamily(ctx context.Context, f *security.Family, max int) error {
	err := s.call(ctx, "create_family", func(ctx context.Context) error { return s.next.CreateFamily(ctx, f, max) })
	s.event("issued", err)
	return err
}

func (s *meteredStore) RotateFamily(ctx context.Context, subject, id, presented, nextRefresh, nextAccess string) error {
	err := s.call(ctx, "rotate_family", func(ctx context.Context) error {
		return s.next.RotateFamily(ctx, subject, id, presented, nextRefresh, nextAccess)
	})
	s.event("refreshed", err)
	if errors.Is(err, security.ErrReused) {
		s.m.tokens.WithLabelValues("reuse_detected").Inc()
	}
	return err
}

// Check runs on every guarded request: the in-memory store's is a map
// lookup, not worth a clock reading either side.
func (s *meteredStore) Check(ctx context.Context, c security.Check) error {
	if s.store == "memory" {
		return s.next.Check(ctx, c)
	}
	return s.call(ctx, "check", func(ctx context.Context) error { return s.next.Check(ctx, c) })
}

func (s *meteredStore) PutAccount(ctx context.Context, subject string, a security.Account) (security.Account, error) {
	var held security.Account
	err := s.call(ctx, "put_account", func(ctx context.Context) (err error) {
		held, err = s.next.PutAccount(ctx, subject, a)
		return err
	})
	return held, err
}

func (s *meteredStore) Account(ctx context.Context, subject string) (*security.Account, error) {
	var a *security.Account
	err := s.call(ctx, "account", func(ctx context.Context) (err error) {
		a, err = s.next.Account(ctx, subject)
		return err
	})
	return a, err
}

func (s *meteredStore) RevokeFamily(ctx context.Context, subject, id string) error {
	err := s.call(ctx, "revoke_family", func(ctx context.Context) error { return s.next.RevokeFamily(ctx, subject, id) })
	s.event("revoked", err)
	return err
}

func (s *meteredStore) Families(ctx context.Context, subject string) ([]security.Family, error) {
	var fs []security.Family
	err := s.call(ctx, "families", func(ctx context.Context) (err error) {
		fs, err = s.next.Families(ctx, subject)
		return err
	})
	return fs, err
}

func (s *meteredStore) RevokeSubject(ctx context.Context, subject string) error {
	err := s.call(ctx, "revoke_subject", func(ctx context.Context) error { return s.next.RevokeSubject(ctx, subject) })
	s.event("revoked_all", err)
	return err
}

func (s *meteredStore) CreateSession(ctx context.Context, sess *security.Session, max int) error {
	return s.call(ctx, "create_session", func(ctx context.Context) error { return s.next.CreateSession(ctx, sess, max) })
}

func (s *meteredStore) Session(ctx context.Context, subject, id string) (*security.Session, error) {
	var sess *security.Session
	err := s.call(ctx, "session", func(ctx context.Context) (err error) {
		sess, err = s.next.Session(ctx, subject, id)
		return err
	})
	return sess, err
}

func (s *meteredStore) DeleteSession(ctx context.Context, subject, id string) error {
	return s.call(ctx, "delete_session", func(ctx context.Context) error { return s.next.DeleteSession(ctx, subject, id) })
}

func (s *meteredStore) Sessions(ctx context.Context, subject string) ([]security.Session, error) {
	var ss []security.Session
	err := s.call(ctx, "sessions", func(ctx context.Context) (err error) {
		ss, err = s.next.Sessions(ctx, subject)
		return err
	})
	return ss, err
}

func (s *meteredStore) MarkKey(ctx context.Context, k *security.APIKey, ifAbsent bool, max int) (bool, error) {
	var wrote bool
	err := s.call(ctx, "mark_key", func(ctx context.Context) (err error) {
		wrote, err = s.next.MarkKey(ctx, k, ifAbsent, max)
		return err
	})
	return wrote, err
}

func (s *meteredStore) RevokeKey(ctx context.Context, subject, id string, expires time.Time) error {
	return s.call(ctx, "revoke_key", func(ctx context.Context) error { return s.next.RevokeKey(ctx, subject, id, expires) })
}

func (s *meteredStore) Ping(ctx context.Context) error {
	return s.call(ctx, "ping", func(ctx context.Context) error { return s.next.Ping(ctx) })
}

// Unwrap is the store it meters: the guard's path then reaches specguard's
// own store past the metering (see security.Store), so that a Redis
// store's checks still ride in the rate-limit script and the memory store
// checks at the guard's reading of the clock.
func (s *meteredStore) Unwrap() security.Store { return s.next }

// rateLimitObserver times the rate-limit store's calls (a remote store's:
// the in-memory one answers in ~100ns).
func (m *Metrics) rateLimitObserver(store string) func(time.Duration, error) {
	return func(d time.Duration, err error) { m.observeStore(store, "ratelimit", d, err) }
}
