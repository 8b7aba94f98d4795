package server

import (
	"context"
	"fmt"
	"runtime"

	"golang.org/x/crypto/bcrypt"

	"github.com/specguard/specguard/security"
)

// passwords hashes and checks passwords with bcrypt, on all CPUs but one
// at a time (one on a single CPU). A password check costs tens of
// milliseconds of CPU; a burst of logins or registrations running all at
// once would starve every other request of CPU (their store calls then time
// out), so the burst queues here instead, bounded by each request's context.
type passwords struct {
	cost  int
	slots chan struct{}
	dummy []byte // compared against when an account is unknown, so timing does not tell
}

func newPasswords(cost int) (*passwords, error) {
	p := &passwords{cost: cost, slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))}
	var err error
	p.dummy, err = bcrypt.GenerateFromPassword([]byte("specguard timing equaliser"), cost)
	return p, err
}

// acquire waits for a slot; a request that gives up first is answered as
// by a store that did not answer in time.
func (p *passwords) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting to check a password: %v", security.ErrUnavailable, ctx.Err())
	}
}

// hash returns the bcrypt hash of password.
func (p *passwords) hash(ctx context.Context, password string) (string, error) {
	if err := p.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-p.slots }()
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	return string(h), err
}

// match reports whether password matches hash; an empty hash (no such
// account) is compared against a dummy, costing the same time.
func (p *passwords) match(ctx context.Context, hash, password string) (bool, error) {
	if err := p.acquire(ctx); err != nil {
		return false, err
	}
	defer func() { <-p.slots }()
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(p.dummy, []byte(password))
		return false, nil
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil, nil
}
