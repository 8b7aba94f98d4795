package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/specguard/specguard/security"
)

// meteredStore times every security store call and counts the token
// lifecycle events that pass through it.
type meteredStore struct {
	next  security.Store
	m     *Metrics
	store string // "memory", "redis", "redis-cluster"
}

func (s *meteredStore) done(call string, start time.Time, err error) error {
	s.m.observeStore(s.store, call, time.Since(start), err)
	return err
}

func (s *meteredStore) event(name string, err error) {
	if err == nil {
		s.m.tokens.WithLabelValues(name).Inc()
	}
}

func (s *meteredStore) CreateFamily(ctx context.Context, f *security.Family, max int) error {
	err := s.done("create_family", time.Now(), s.next.CreateFamily(ctx, f, max))
	s.event("issued", err)
	return err
}

func (s *meteredStore) RotateFamily(ctx context.Context, subject, id, presented, nextRefresh, nextAccess string) error {
	err := s.done("rotate_family", time.Now(), s.next.RotateFamily(ctx, subject, id, presented, nextRefresh, nextAccess))
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
	return s.done("check", time.Now(), s.next.Check(ctx, c))
}

func (s *meteredStore) PutAccount(ctx context.Context, subject string, a security.Account) (security.Account, error) {
	start := time.Now()
	held, err := s.next.PutAccount(ctx, subject, a)
	return held, s.done("put_account", start, err)
}

func (s *meteredStore) Account(ctx context.Context, subject string) (*security.Account, error) {
	start := time.Now()
	a, err := s.next.Account(ctx, subject)
	if errors.Is(err, security.ErrNotFound) {
		s.m.observeStore(s.store, "account", time.Since(start), nil)
		return a, err
	}
	return a, s.done("account", start, err)
}

func (s *meteredStore) RevokeFamily(ctx context.Context, subject, id string) error {
	err := s.done("revoke_family", time.Now(), s.next.RevokeFamily(ctx, subject, id))
	s.event("revoked", err)
	return err
}

func (s *meteredStore) Families(ctx context.Context, subject string) ([]security.Family, error) {
	start := time.Now()
	fs, err := s.next.Families(ctx, subject)
	return fs, s.done("families", start, err)
}

func (s *meteredStore) RevokeSubject(ctx context.Context, subject string) error {
	err := s.done("revoke_subject", time.Now(), s.next.RevokeSubject(ctx, subject))
	s.event("revoked_all", err)
	return err
}

func (s *meteredStore) CreateSession(ctx context.Context, sess *security.Session, max int) error {
	return s.done("create_session", time.Now(), s.next.CreateSession(ctx, sess, max))
}

func (s *meteredStore) Session(ctx context.Context, subject, id string) (*security.Session, error) {
	start := time.Now()
	sess, err := s.next.Session(ctx, subject, id)
	return sess, s.done("session", start, err)
}

func (s *meteredStore) DeleteSession(ctx context.Context, subject, id string) error {
	return s.done("delete_session", time.Now(), s.next.DeleteSession(ctx, subject, id))
}

func (s *meteredStore) Sessions(ctx context.Context, subject string) ([]security.Session, error) {
	start := time.Now()
	ss, err := s.next.Sessions(ctx, subject)
	return ss, s.done("sessions", start, err)
}

func (s *meteredStore) MarkKey(ctx context.Context, k *security.APIKey, ifAbsent bool, max int) (bool, error) {
	start := time.Now()
	wrote, err := s.next.MarkKey(ctx, k, ifAbsent, max)
	return wrote, s.done("mark_key", start, err)
}

func (s *meteredStore) RevokeKey(ctx context.Context, subject, id string, expires time.Time) error {
	return s.done("revoke_key", time.Now(), s.next.RevokeKey(ctx, subject, id, expires))
}

func (s *meteredStore) Ping(ctx context.Context) error {
	return s.done("ping", time.Now(), s.next.Ping(ctx))
}

// CheckScript forwards security.ScriptChecker, so that credential checks
// still ride in the rate-limit script (a Redis store); a store that has no
// script gets none, and its checks cost a call of their own.
func (s *meteredStore) CheckScript(c security.Check) (client any, fn string, keys []string, args []any) {
	if sc, ok := s.next.(security.ScriptChecker); ok {
		return sc.CheckScript(c)
	}
	return nil, "", nil, nil
}

// CheckFailed forwards security.ScriptChecker.
func (s *meteredStore) CheckFailed(code int64) error {
	if sc, ok := s.next.(security.ScriptChecker); ok {
		return sc.CheckFailed(code)
	}
	return fmt.Errorf("%w: the store has no check script", security.ErrUnavailable)
}

// rateLimitObserver times the rate-limit store's calls (a remote store's:
// the in-memory one answers in ~100ns).
func (m *Metrics) rateLimitObserver(store string) func(time.Duration, error) {
	return func(d time.Duration, err error) { m.observeStore(store, "ratelimit", d, err) }
}
