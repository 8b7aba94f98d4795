package security

import (
	"context"
	"slices"
	"sync"
	"time"
)

// MemoryStore keeps security state in this process. It is the default when
// no Redis is configured; state is lost on restart and not shared.
type MemoryStore struct {
	now func() time.Time

	mu       sync.RWMutex
	families map[string]*Family
	sessions map[string]*Session
	keys     map[string]*APIKey
	writes   int
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store. now is its clock (time.Now when nil).
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{
		now:      now,
		families: map[string]*Family{},
		sessions: map[string]*Session{},
		keys:     map[string]*APIKey{},
	}
}

// sweep drops expired records now and then, so memory stays bounded without
// a background goroutine. Callers hold mu.
func (m *MemoryStore) sweep(now time.Time) {
	m.writes++
	if m.writes%1024 != 0 {
		return
	}
	for id, f := range m.families {
		if !now.Before(f.Expires) {
			delete(m.families, id)
		}
	}
	for id, s := range m.sessions {
		if !now.Before(s.Expires) {
			delete(m.sessions, id)
		}
	}
	for id, k := range m.keys {
		if !now.Before(k.Expires) {
			delete(m.keys, id)
		}
	}
}

// liveFamily returns family id when it exists, has not expired and was not
// revoked. Callers hold mu.
func (m *MemoryStore) liveFamily(id string, now time.Time) *Family {
	f := m.families[id]
	if f == nil {
		return nil
	}
	if !now.Before(f.Expires) {
		delete(m.families, id)
		return nil
	}
	return f
}

func (m *MemoryStore) CreateFamily(_ context.Context, f *Family) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	f.Created, f.LastUsed = now, now
	c := *f
	m.families[f.ID] = &c
	return nil
}

func (m *MemoryStore) RotateFamily(_ context.Context, subject, id, presented, nextRefresh, nextAccess string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	f := m.liveFamily(id, now)
	if f == nil || f.Subject != subject {
		return ErrNotFound
	}
	if f.RefreshJTI != presented {
		delete(m.families, id)
		return ErrReused
	}
	f.RefreshJTI, f.AccessJTI, f.LastUsed = nextRefresh, nextAccess, now
	return nil
}

// CheckAccess runs on every bearer request: it takes the read lock only and
// leaves expired families for a writer to delete.
func (m *MemoryStore) CheckAccess(_ context.Context, subject, family, jti string) error {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	f := m.families[family]
	if f == nil || !now.Before(f.Expires) || f.Subject != subject || f.AccessJTI != jti {
		return ErrNotFound
	}
	return nil
}

func (m *MemoryStore) RevokeFamily(_ context.Context, subject, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.liveFamily(id, m.now())
	if f == nil || f.Subject != subject {
		return ErrNotFound
	}
	delete(m.families, id)
	return nil
}

func (m *MemoryStore) Families(_ context.Context, subject string) ([]Family, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var out []Family
	for id, f := range m.families {
		if f.Subject == subject && m.liveFamily(id, now) != nil {
			out = append(out, *f)
		}
	}
	sortNewest(out, func(f Family) time.Time { return f.Created })
	return out, nil
}

func (m *MemoryStore) RevokeSubject(_ context.Context, subject string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, f := range m.families {
		if f.Subject == subject {
			delete(m.families, id)
		}
	}
	for id, s := range m.sessions {
		if s.Subject == subject {
			delete(m.sessions, id)
		}
	}
	for id, k := range m.keys {
		if k.Subject == subject {
			delete(m.keys, id)
		}
	}
	return nil
}

func (m *MemoryStore) CreateSession(_ context.Context, s *Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	s.Created, s.LastUsed = now, now
	c := *s
	c.SecretHash = slices.Clone(s.SecretHash)
	m.sessions[s.ID] = &c
	return nil
}

func (m *MemoryStore) liveSession(id string, now time.Time) *Session {
	s := m.sessions[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.Expires) {
		delete(m.sessions, id)
		return nil
	}
	return s
}

func (m *MemoryStore) Session(_ context.Context, subject, id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	s := m.liveSession(id, now)
	if s == nil || s.Subject != subject {
		return nil, ErrNotFound
	}
	s.LastUsed = now
	c := *s
	return &c, nil
}

func (m *MemoryStore) DeleteSession(_ context.Context, subject, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.liveSession(id, m.now())
	if s == nil || s.Subject != subject {
		return ErrNotFound
	}
	delete(m.sessions, id)
	return nil
}

func (m *MemoryStore) Sessions(_ context.Context, subject string) ([]Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var out []Session
	for id, s := range m.sessions {
		if s.Subject == subject && m.liveSession(id, now) != nil {
			out = append(out, *s)
		}
	}
	sortNewest(out, func(s Session) time.Time { return s.Created })
	return out, nil
}

func (m *MemoryStore) CreateKey(_ context.Context, k *APIKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(m.now())
	k.Created = m.now()
	c := *k
	c.Scopes = slices.Clone(k.Scopes)
	c.SecretHash = slices.Clone(k.SecretHash)
	m.keys[k.ID] = &c
	return nil
}

func (m *MemoryStore) liveKey(id string) *APIKey {
	k := m.keys[id]
	if k == nil {
		return nil
	}
	if !m.now().Before(k.Expires) {
		delete(m.keys, id)
		return nil
	}
	return k
}

func (m *MemoryStore) Key(_ context.Context, subject, id string) (*APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.liveKey(id)
	if k == nil || k.Subject != subject {
		return nil, ErrNotFound
	}
	k.LastUsed = m.now()
	c := *k
	c.Scopes = slices.Clone(k.Scopes)
	return &c, nil
}

func (m *MemoryStore) RevokeKey(_ context.Context, subject, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.liveKey(id)
	if k == nil || k.Subject != subject {
		return ErrNotFound
	}
	delete(m.keys, id)
	return nil
}

func (m *MemoryStore) Keys(_ context.Context, subject string) ([]APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []APIKey
	for id, k := range m.keys {
		if k.Subject == subject && m.liveKey(id) != nil {
			out = append(out, *k)
		}
	}
	sortNewest(out, func(k APIKey) time.Time { return k.Created })
	return out, nil
}

func (m *MemoryStore) Ping(context.Context) error { return nil }
