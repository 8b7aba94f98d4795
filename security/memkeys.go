package security

import (
	"context"
	"slices"
	"sync"
	"time"
)

// MemoryKeyRecords keeps API-key records in this process: for tests, and
// for services that accept losing their keys on restart. A service that
// must keep them implements KeyRecords on its database.
type MemoryKeyRecords struct {
	now  func() time.Time
	mu   sync.Mutex
	keys map[string]APIKey
}

var _ KeyRecords = (*MemoryKeyRecords)(nil)

// NewMemoryKeyRecords returns empty records; now is the clock (time.Now
// when nil) that stamps revocations.
func NewMemoryKeyRecords(now func() time.Time) *MemoryKeyRecords {
	if now == nil {
		now = time.Now
	}
	return &MemoryKeyRecords{now: now, keys: map[string]APIKey{}}
}

func cloneKey(k APIKey) APIKey {
	k.Scopes = slices.Clone(k.Scopes)
	k.SecretHash = slices.Clone(k.SecretHash)
	return k
}

func (m *MemoryKeyRecords) CreateAPIKey(_ context.Context, k *APIKey, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if max > 0 {
		n, now := 0, m.now()
		for _, o := range m.keys {
			if o.Subject == k.Subject && o.Revoked.IsZero() && now.Before(o.Expires) {
				n++
			}
		}
		if n >= max {
			return ErrTooMany
		}
	}
	m.keys[k.ID] = cloneKey(*k)
	return nil
}

func (m *MemoryKeyRecords) APIKey(_ context.Context, id string) (*APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok {
		return nil, ErrNotFound
	}
	c := cloneKey(k)
	return &c, nil
}

func (m *MemoryKeyRecords) APIKeys(_ context.Context, subject string) ([]APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := []APIKey{}
	for _, k := range m.keys {
		if k.Subject == subject && k.Revoked.IsZero() && now.Before(k.Expires) {
			out = append(out, cloneKey(k))
		}
	}
	sortNewest(out, func(k APIKey) time.Time { return k.Created })
	return out, nil
}

func (m *MemoryKeyRecords) RevokeAPIKey(_ context.Context, subject, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[id]
	if !ok || k.Subject != subject || !k.Revoked.IsZero() || !m.now().Before(k.Expires) {
		return ErrNotFound
	}
	k.Revoked = m.now()
	m.keys[id] = k
	return nil
}

func (m *MemoryKeyRecords) RevokeAPIKeys(_ context.Context, subject string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, k := range m.keys {
		if k.Subject == subject && k.Revoked.IsZero() {
			k.Revoked = m.now()
			m.keys[id] = k
		}
	}
	return nil
}

func (m *MemoryKeyRecords) TouchAPIKey(_ context.Context, id string, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[id]; ok && k.LastUsed.Before(t) {
		k.LastUsed = t
		m.keys[id] = k
	}
	return nil
}
