package server

import (
	"context"
	"errors"
	"time"

	"github.com/specguard/specguard/limits"
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
	s.m.observeStore(s.store, call, start, err)
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
		s.m.observeStore(s.store, "account", start, nil)
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

func (s *meteredStore) MarkKey(ctx context.Context, k *security.APIKey, ifAbsent bool) (bool, error) {
	start := time.Now()
	wrote, err := s.next.MarkKey(ctx, k, ifAbsent)
	return wrote, s.done("mark_key", start, err)
}

func (s *meteredStore) RevokeKey(ctx context.Context, subject, id string, expires time.Time) error {
	return s.done("revoke_key", time.Now(), s.next.RevokeKey(ctx, subject, id, expires))
}

func (s *meteredStore) Ping(ctx context.Context) error {
	return s.done("ping", time.Now(), s.next.Ping(ctx))
}

// meteredLimits times rate-limit store calls. Only remote stores are
// wrapped: the in-memory one answers in ~100ns and the limiter skips its
// timeout context for it, which a wrapper would hide.
type meteredLimits struct {
	next  limits.Store
	m     *Metrics
	store string
}

func (s *meteredLimits) Allow(ctx context.Context, reqs []limits.Request, results []limits.Result) (bool, error) {
	start := time.Now()
	ok, err := s.next.Allow(ctx, reqs, results)
	s.m.observeStore(s.store, "ratelimit", start, err)
	return ok, err
}

// RedisGate forwards security.RedisGater, so credential checks can still
// ride in the rate-limit script.
func (s *meteredStore) RedisGate(c security.Check) *security.RedisGate {
	if rg, ok := s.next.(security.RedisGater); ok {
		return rg.RedisGate(c)
	}
	return nil
}

// CanGate forwards limits.GatedStore.
func (s *meteredLimits) CanGate() bool {
	gs, ok := s.next.(limits.GatedStore)
	return ok && gs.CanGate()
}

// AllowGated forwards limits.GatedStore, timed as a rate-limit call.
func (s *meteredLimits) AllowGated(ctx context.Context, gate *security.Gate, reqs []limits.Request, results []limits.Result) (bool, error, error) {
	gs, ok := s.next.(limits.GatedStore)
	if !ok {
		return false, nil, errors.New("the rate-limit store cannot carry gates")
	}
	start := time.Now()
	allowed, gateErr, err := gs.AllowGated(ctx, gate, reqs, results)
	s.m.observeStore(s.store, "ratelimit", start, err)
	return allowed, gateErr, err
}
