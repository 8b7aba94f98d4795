package security

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/specguard/specguard/internal/clock"
	"github.com/specguard/specguard/internal/onetrip"
)

// MemoryStore keeps security state in this process. It is the default when
// no Redis is configured; state is lost on restart and not shared.
type MemoryStore struct {
	clock clock.Clock

	mu       sync.RWMutex
	families map[string]*Family
	sessions map[string]*Session
	marks    map[string]*keyMark
	accounts map[string]heldAccount
	// owned indexes every record by subject, so that listing or ending one
	// subject's records costs what that subject holds, whatever the others do.
	owned map[string]*owned
	// expiries queues every record by when it expires, soonest first: each
	// write drops a bounded number of expired records (see sweep).
	expiries expiryQueue
}

// Kinds of records in the expiry queue.
const (
	expFamily uint8 = iota
	expSession
	expMark
	expAccount
)

// expiry is when one record expires. A record whose expiry moves later
// (a mark refilled, an account's state written again) is queued again;
// its older entry is skipped when it comes up.
type expiry struct {
	at   int64 // unix microseconds
	kind uint8
	id   string // the record's id; the subject for an account
}

// expiryQueue is a min-heap of expiries (container/heap).
type expiryQueue []expiry

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(expiry)) }
func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// queue records that record id of kind expires at t. Callers hold mu.
func (m *MemoryStore) queue(kind uint8, id string, t time.Time) {
	heap.Push(&m.expiries, expiry{at: t.UnixMicro(), kind: kind, id: id})
	// A record ended early (a logout, a revocation) leaves its entry
	// until its time comes, 30 days for a login: the queue grew with the
	// logins made, not those held. Made again from what is held when it
	// holds twice as many entries: O(1) a write, amortised.
	if held := len(m.families) + len(m.sessions) + len(m.marks) + len(m.accounts); len(m.expiries) > 2*held+sweepBatch {
		m.requeue(held)
	}
}

// requeue makes the expiry queue again, one entry per record held, at the
// time sweep drops it. Callers hold mu.
func (m *MemoryStore) requeue(held int) {
	q := make(expiryQueue, 0, held)
	for id, f := range m.families {
		q = append(q, expiry{at: f.Expires.UnixMicro(), kind: expFamily, id: id})
	}
	for id, s := range m.sessions {
		q = append(q, expiry{at: s.Expires.UnixMicro(), kind: expSession, id: id})
	}
	for id, k := range m.marks {
		q = append(q, expiry{at: k.until.UnixMicro(), kind: expMark, id: id})
	}
	for subject, a := range m.accounts {
		q = append(q, expiry{at: a.expires.UnixMicro(), kind: expAccount, id: subject})
	}
	heap.Init(&q)
	m.expiries = q
}

// sweepBatch bounds the expired records one write drops (tens of
// microseconds under the lock, whatever the store holds): a million
// records expiring at once are dropped over the writes that follow, never
// in one pause of every check. Each write adds one record at most, so the
// batches keep up.
const sweepBatch = 32

// owned are the ids of one subject's records.
type owned struct {
	families, sessions, marks map[string]struct{}
}

func (o *owned) empty() bool { return len(o.families)+len(o.sessions)+len(o.marks) == 0 }

// heldAccount is an account's state and when the store forgets it.
type heldAccount struct {
	Account
	expires time.Time
}

// keyMark is an API key's mark: live until the key expires unless
// revoked; the store forgets it at until (MarkTTL at most).
type keyMark struct {
	subject string
	version int64
	expires time.Time
	until   time.Time
	revoked bool
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store. now is its clock (time.Now when
// nil: a guarded request's check then takes the guard's one reading of
// the clock for the request rather than read it again).
func NewMemoryStore(now func() time.Time) *MemoryStore {
	return &MemoryStore{
		clock:    clock.New(now),
		families: map[string]*Family{},
		sessions: map[string]*Session{},
		marks:    map[string]*keyMark{},
		accounts: map[string]heldAccount{},
		owned:    map[string]*owned{},
	}
}

// own returns subject's index, made when absent. Callers hold mu.
func (m *MemoryStore) own(subject string) *owned {
	o := m.owned[subject]
	if o == nil {
		o = &owned{families: map[string]struct{}{}, sessions: map[string]struct{}{}, marks: map[string]struct{}{}}
		m.owned[subject] = o
	}
	return o
}

// forget removes id from subject's index of kind. Callers hold mu.
func (m *MemoryStore) forget(subject string, kind func(*owned) map[string]struct{}, id string) {
	if o := m.owned[subject]; o != nil {
		delete(kind(o), id)
		if o.empty() {
			delete(m.owned, subject)
		}
	}
}

func families(o *owned) map[string]struct{} { return o.families }
func sessions(o *owned) map[string]struct{} { return o.sessions }
func marks(o *owned) map[string]struct{}    { return o.marks }

func (m *MemoryStore) dropFamily(id string) {
	if f := m.families[id]; f != nil {
		delete(m.families, id)
		m.forget(f.Subject, families, id)
	}
}

func (m *MemoryStore) dropSession(id string) {
	if s := m.sessions[id]; s != nil {
		delete(m.sessions, id)
		m.forget(s.Subject, sessions, id)
	}
}

func (m *MemoryStore) dropMark(id string) {
	if k := m.marks[id]; k != nil {
		delete(m.marks, id)
		m.forget(k.subject, marks, id)
	}
}

// sweep drops records that expired by now, at most sweepBatch of them,
// soonest first. Memory stays bounded without a background goroutine, and
// no write waits on more than a batch. Callers hold mu.
func (m *MemoryStore) sweep(now time.Time) {
	t := now.UnixMicro()
	for n := 0; n < sweepBatch && len(m.expiries) > 0 && m.expiries[0].at <= t; n++ {
		e := heap.Pop(&m.expiries).(expiry)
		switch e.kind {
		case expFamily:
			if f := m.families[e.id]; f != nil && !now.Before(f.Expires) {
				m.dropFamily(e.id)
			}
		case expSession:
			if s := m.sessions[e.id]; s != nil && !now.Before(s.Expires) {
				m.dropSession(e.id)
			}
		case expMark:
			if k := m.marks[e.id]; k != nil && !now.Before(k.until) {
				m.dropMark(e.id)
			}
		case expAccount:
			if a, ok := m.accounts[e.id]; ok && !now.Before(a.expires) {
				delete(m.accounts, e.id)
			}
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
		m.dropFamily(id)
		return nil
	}
	return f
}

// Check implements Store. It runs on every request: a session is marked
// used under the write lock, everything else needs the read lock only.
func (m *MemoryStore) Check(_ context.Context, c Check) error {
	return m.checkAt(&c, m.clock.Now())
}

func init() {
	onetrip.CheckAt = func(_ context.Context, store Checker, c Check, at time.Time) (ran bool, err error) {
		for range onetrip.MaxUnwrap {
			switch s := store.(type) {
			case *MemoryStore:
				if s == nil {
					return false, nil // a broken Unwrap: the wrapper's own Check
				}
				return true, s.checkAt(&c, s.clock.At(at))
			case interface{ Unwrap() Store }:
				if at.IsZero() {
					return false, nil // no reading to share: the wrapper's own Check
				}
				store = s.Unwrap()
			default:
				return false, nil
			}
		}
		return false, nil
	}
}

// checkAt is Check at now: the guard's reading of the clock for the
// request, so that it reads the clock once (see internal/clock).
func (m *MemoryStore) checkAt(c *Check, now time.Time) (err error) {
	if c.Kind == SessionCredential {
		m.mu.Lock()
		defer m.mu.Unlock()
	} else {
		m.mu.RLock()
		defer m.mu.RUnlock()
	}
	var minted int64
	switch c.Kind {
	case AccessCredential:
		f := m.families[c.ID]
		if f == nil || !now.Before(f.Expires) || f.Subject != c.Subject || f.AccessJTI != c.JTI {
			return ErrNotFound
		}
		minted = f.AccountVersion
	case SessionCredential:
		s := m.sessions[c.ID]
		if s == nil || !now.Before(s.ends()) || s.Subject != c.Subject {
			return ErrNotFound
		}
		minted = s.AccountVersion
		defer func() {
			if err == nil { // a check that fails is no use, as in Redis
				s.LastUsed = now
			}
		}()
	case KeyCredential:
		k := m.marks[c.ID]
		if k == nil || !now.Before(k.until) {
			return ErrUnmarked
		}
		if k.revoked || !now.Before(k.expires) || k.subject != c.Subject {
			return ErrNotFound
		}
		minted = k.version
	default:
		return ErrNotFound
	}
	if c.AccountStamp == "" {
		return nil
	}
	a, ok := m.accounts[c.Subject]
	if !ok || !now.Before(a.expires) || a.Stamp != c.AccountStamp {
		return ErrStale
	}
	if minted < a.NotBefore {
		return errNotBefore
	}
	return nil
}

// errNotBefore is Check's error for a credential minted before its
// account's NotBefore (see onetrip.ErrNotBefore).
var errNotBefore = fmt.Errorf("%w (%w)", ErrNotFound, onetrip.ErrNotBefore)

// PutAccount implements Store.
func (m *MemoryStore) PutAccount(_ context.Context, subject string, a Account) (Account, error) {
	if a.Version > MaxAccountVersion || a.NotBefore > MaxAccountVersion {
		return Account{}, fmt.Errorf("%w: account %s: version %d or not-before %d past MaxAccountVersion", ErrUnavailable, subject, a.Version, a.NotBefore)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	m.sweep(now)
	if old, ok := m.accounts[subject]; ok && now.Before(old.expires) && (old.Version > a.Version || sameState(old.Account, a)) {
		return old.Account, nil
	}
	a.Stamp = NewID()
	m.accounts[subject] = heldAccount{Account: a, expires: now.Add(AccountTTL)}
	m.queue(expAccount, subject, now.Add(AccountTTL))
	return a, nil
}

// sameState reports whether a and b are one account state, stamps aside.
func sameState(a, b Account) bool {
	a.Stamp, b.Stamp = "", ""
	return a == b
}

// Account implements Store.
func (m *MemoryStore) Account(_ context.Context, subject string) (*Account, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	a, ok := m.accounts[subject]
	if !ok || !m.clock.Now().Before(a.expires) {
		return nil, ErrNotFound
	}
	return &a.Account, nil
}

// live counts the records of ids that are live at now; expired ones are
// dropped by drop. Callers hold mu.
func live(ids map[string]struct{}, now time.Time, expires func(id string) time.Time, drop func(id string)) int {
	n := 0
	for id := range ids {
		if now.Before(expires(id)) {
			n++
		} else {
			drop(id)
		}
	}
	return n
}

func (m *MemoryStore) CreateFamily(_ context.Context, f *Family, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	m.sweep(now)
	if old := m.liveFamily(f.ID, now); old != nil && old.Subject == f.Subject {
		f.Created, f.LastUsed = old.Created, old.LastUsed
		return nil // this create again (see FamilyStore)
	}
	o := m.own(f.Subject)
	if max > 0 && live(o.families, now, func(id string) time.Time { return m.families[id].Expires }, m.dropFamily) >= max {
		return ErrTooMany
	}
	f.Created, f.LastUsed = now, now
	c := *f
	m.families[f.ID] = &c
	m.own(f.Subject).families[f.ID] = struct{}{}
	m.queue(expFamily, f.ID, f.Expires)
	return nil
}

func (m *MemoryStore) RotateFamily(_ context.Context, subject, id, presented, nextRefresh, nextAccess string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	f := m.liveFamily(id, now)
	if f == nil || f.Subject != subject {
		return ErrNotFound
	}
	if f.RefreshJTI == nextRefresh && f.AccessJTI == nextAccess {
		return nil // this rotation again (see FamilyStore)
	}
	if f.RefreshJTI != presented {
		m.dropFamily(id)
		return ErrReused
	}
	f.RefreshJTI, f.AccessJTI, f.LastUsed = nextRefresh, nextAccess, now
	return nil
}

func (m *MemoryStore) RevokeFamily(_ context.Context, subject, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.liveFamily(id, m.clock.Now())
	if f == nil || f.Subject != subject {
		return ErrNotFound
	}
	m.dropFamily(id)
	return nil
}

func (m *MemoryStore) Families(_ context.Context, subject string) ([]Family, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var out []Family
	if o := m.owned[subject]; o != nil {
		for id := range o.families {
			if f := m.liveFamily(id, now); f != nil {
				out = append(out, *f)
			}
		}
	}
	sortNewest(out, func(f Family) time.Time { return f.Created })
	return out, nil
}

// RevokeSubject implements Store. It costs what subject holds, whatever
// other subjects hold. Key revocations are kept.
func (m *MemoryStore) RevokeSubject(_ context.Context, subject string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.owned[subject]
	if o == nil {
		return nil
	}
	for id := range o.families {
		m.dropFamily(id)
	}
	for id := range o.sessions {
		m.dropSession(id)
	}
	for id := range o.marks {
		if !m.marks[id].revoked {
			m.dropMark(id)
		}
	}
	return nil
}

func (m *MemoryStore) CreateSession(_ context.Context, s *Session, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	m.sweep(now)
	if old := m.liveSession(s.ID, now); old != nil && old.Subject == s.Subject {
		s.Created, s.LastUsed = old.Created, old.LastUsed
		return nil // this create again (see SessionStore)
	}
	o := m.own(s.Subject)
	if max > 0 && live(o.sessions, now, func(id string) time.Time { return m.sessions[id].ends() }, m.dropSession) >= max {
		return ErrTooMany
	}
	s.Created, s.LastUsed = now, now
	c := *s
	c.SecretHash, c.CSRFHash = slices.Clone(s.SecretHash), slices.Clone(s.CSRFHash)
	m.sessions[s.ID] = &c
	m.own(s.Subject).sessions[s.ID] = struct{}{}
	m.queue(expSession, s.ID, s.Expires)
	return nil
}

func (m *MemoryStore) liveSession(id string, now time.Time) *Session {
	s := m.sessions[id]
	if s == nil {
		return nil
	}
	if !now.Before(s.ends()) {
		m.dropSession(id)
		return nil
	}
	return s
}

func (m *MemoryStore) Session(_ context.Context, subject, id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.liveSession(id, m.clock.Now())
	if s == nil || s.Subject != subject {
		return nil, ErrNotFound
	}
	c := *s
	return &c, nil
}

func (m *MemoryStore) DeleteSession(_ context.Context, subject, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.liveSession(id, m.clock.Now())
	if s == nil || s.Subject != subject {
		return ErrNotFound
	}
	m.dropSession(id)
	return nil
}

func (m *MemoryStore) Sessions(_ context.Context, subject string) ([]Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var out []Session
	if o := m.owned[subject]; o != nil {
		for id := range o.sessions {
			if s := m.liveSession(id, now); s != nil {
				out = append(out, *s)
			}
		}
	}
	sortNewest(out, func(s Session) time.Time { return s.Created })
	return out, nil
}

// MarkKey implements Store.
func (m *MemoryStore) MarkKey(_ context.Context, k *APIKey, ifAbsent bool, max int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	m.sweep(now)
	if old, exists := m.marks[k.ID]; exists && ifAbsent && now.Before(old.until) {
		return false, nil
	}
	if !now.Before(k.Expires) {
		return false, ErrNotFound
	}
	if old, exists := m.marks[k.ID]; max > 0 && exists && !old.revoked && old.subject == k.Subject && now.Before(old.until) {
		return true, nil // this first mark again (see KeyStore)
	}
	if o := m.owned[k.Subject]; max > 0 && o != nil &&
		live(o.marks, now, func(id string) time.Time { return m.marks[id].until }, m.dropMark) >= max {
		return false, ErrTooMany
	}
	until := k.Expires
	if limit := now.Add(MarkTTL); limit.Before(until) {
		until = limit
	}
	m.dropMark(k.ID)
	m.marks[k.ID] = &keyMark{subject: k.Subject, version: k.AccountVersion, expires: k.Expires, until: until}
	m.own(k.Subject).marks[k.ID] = struct{}{}
	m.queue(expMark, k.ID, until)
	return true, nil
}

// RevokeKey implements Store: the revocation lasts KeyRevocationTTL.
func (m *MemoryStore) RevokeKey(_ context.Context, subject, id string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	m.sweep(now)
	until := now.Add(KeyRevocationTTL)
	if expires.Before(until) {
		until = expires // dead by its expiry from then on
	}
	m.dropMark(id)
	m.marks[id] = &keyMark{subject: subject, expires: expires, until: until, revoked: true}
	m.own(subject).marks[id] = struct{}{}
	m.queue(expMark, id, until)
	return nil
}

func (m *MemoryStore) Ping(context.Context) error { return nil }

// sortNewest sorts s by creation, newest first.
func sortNewest[T any](s []T, created func(T) time.Time) {
	slices.SortFunc(s, func(a, b T) int { return created(b).Compare(created(a)) })
}
