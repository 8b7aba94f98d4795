package credentials

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/specguard/specguard/security"
)

// Account is an account as the credential operations keep it.
type Account struct {
	ID           string
	Email        string
	Role         string
	PasswordHash string // argon2id or bcrypt (see HashPassword)
	Disabled     bool
	// Version grows with every change of Role, Disabled or NotBefore.
	Version int64
	// NotBefore: credentials minted while Version was lower are dead.
	NotBefore int64
	Created   time.Time
	Updated   time.Time
}

// ErrExists: an account with that address exists already.
var ErrExists = errors.New("credentials: an account with that address exists already")

// ErrFixed: a change (see Accounts.UpdateAccount) edited an account's ID,
// Email or Created, which are fixed: an address is an account's key, and a
// store that wrote it would let one account take another's, or drop it.
var ErrFixed = errors.New("credentials: an account's id, email and creation time are fixed")

// CheckFixed returns an error wrapping ErrFixed when after differs from
// before in a fixed field: for an Accounts of one's own, as UpdateAccount
// checks what change did.
func CheckFixed(before, after *Account) error {
	if after.ID != before.ID || after.Email != before.Email || !after.Created.Equal(before.Created) {
		return fmt.Errorf("%w: account %s was changed to id %q, email %q", ErrFixed, before.ID, after.ID, after.Email)
	}
	return nil
}

// Accounts is the durable home of accounts: the service's database.
// sqlstore implements it on SQLite and PostgreSQL; NewMemoryAccounts in
// this process (tests, demos).
type Accounts interface {
	// CreateAccount inserts a (its ID set by the caller), setting Version,
	// Created and Updated. An address taken already, in any case, gives
	// ErrExists: of concurrent registrations of one address one succeeds.
	CreateAccount(ctx context.Context, a *Account) error
	// EnsureAccount inserts a unless an account with its id or address
	// exists, and reports whether it did: seeding is idempotent.
	EnsureAccount(ctx context.Context, a *Account) (bool, error)
	// Account returns account id, or an error wrapping security.ErrNotFound.
	Account(ctx context.Context, id string) (*Account, error)
	// AccountByEmail returns the account of an address, whatever its case.
	AccountByEmail(ctx context.Context, email string) (*Account, error)
	// ListAccounts returns a page of at most limit accounts ordered by the
	// bytes of their EmailKey: those whose key follows EmailKey(after), or
	// the first ones when after is "". The next page starts after the last
	// address of this one. (A store that keeps an older key for some
	// account orders by the key it keeps, and pages after the key of the
	// account of address after.) A limit below 1 is an error.
	ListAccounts(ctx context.Context, after string, limit int) ([]Account, error)
	// UpdateAccount changes account id in one transaction that holds its
	// row: change edits it (an error aborts, and is returned), Version is
	// bumped, the row is written (every field change may edit, PasswordHash
	// and Disabled included; a change of ID, Email or Created is refused,
	// see CheckFixed), then publish runs before the commit; when publish
	// fails nothing is committed. publish mirrors the new state into the shared
	// store every instance checks credentials against.
	UpdateAccount(ctx context.Context, id string, change func(*Account) error, publish func(*Account) error) (*Account, error)
}

// EmailKey is the form of an address that must be unique: trimmed, in
// Unicode normalization form NFKC, case-folded, and in NFKC again (a
// capital letter with a combining mark may have no composed form where its
// small letter has one: J and a combining caron lower to j and the caron,
// which is ǰ). "josé" written with one code point for é and with e and a
// combining accent look the same, as a full-width letter and its ASCII one
// do, and J̌oe and ǰoe: each is one address. Case is folded by upper-casing
// then lower-casing, letter by letter: a capital with two small forms is
// one letter (ΟΔΟΣ is οδος, with a final sigma; О is о and the Cyrillic
// narrow ᲂ), where lower-casing alone made two addresses of one. ß stays
// ß (no capital letter maps it to ss). EmailKey(EmailKey(a)) is
// EmailKey(a).
func EmailKey(email string) string {
	// Trimmed again after NFKC: it makes a spacing accent (´, U+00B4) a
	// space and a combining one.
	return norm.NFKC.String(strings.ToLower(strings.ToUpper(strings.TrimSpace(norm.NFKC.String(strings.TrimSpace(email))))))
}

// MemoryAccounts keeps accounts in this process: for tests and demos; a
// service keeps them in its database (sqlstore).
type MemoryAccounts struct {
	now      func() time.Time
	mu       sync.Mutex
	accounts map[string]Account // by id
}

var _ Accounts = (*MemoryAccounts)(nil)

// NewMemoryAccounts returns no accounts; now is the clock (time.Now when
// nil).
func NewMemoryAccounts(now func() time.Time) *MemoryAccounts {
	if now == nil {
		now = time.Now
	}
	return &MemoryAccounts{now: now, accounts: map[string]Account{}}
}

func (m *MemoryAccounts) taken(a *Account) bool {
	if _, ok := m.accounts[a.ID]; ok {
		return true
	}
	for _, o := range m.accounts {
		if EmailKey(o.Email) == EmailKey(a.Email) {
			return true
		}
	}
	return false
}

// CreateAccount implements Accounts.
func (m *MemoryAccounts) CreateAccount(_ context.Context, a *Account) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.ID == "" {
		return errors.New("CreateAccount: the id is empty")
	}
	if m.taken(a) {
		return ErrExists
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	a.Created, a.Updated, a.Version = now, now, 1
	m.accounts[a.ID] = *a
	return nil
}

// EnsureAccount implements Accounts.
func (m *MemoryAccounts) EnsureAccount(ctx context.Context, a *Account) (bool, error) {
	err := m.CreateAccount(ctx, a)
	if errors.Is(err, ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// Account implements Accounts.
func (m *MemoryAccounts) Account(_ context.Context, id string) (*Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[id]
	if !ok {
		return nil, security.ErrNotFound
	}
	return &a, nil
}

// AccountByEmail implements Accounts.
func (m *MemoryAccounts) AccountByEmail(_ context.Context, email string) (*Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.accounts {
		if EmailKey(a.Email) == EmailKey(email) {
			return &a, nil
		}
	}
	return nil, security.ErrNotFound
}

// ListAccounts implements Accounts.
func (m *MemoryAccounts) ListAccounts(_ context.Context, after string, limit int) ([]Account, error) {
	if limit < 1 {
		return nil, fmt.Errorf("ListAccounts: limit %d, want at least 1", limit)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	from := ""
	if after != "" {
		from = EmailKey(after)
	}
	out := make([]Account, 0, min(limit, len(m.accounts)))
	for _, a := range m.accounts {
		if from == "" || EmailKey(a.Email) > from {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(EmailKey(a.Email), EmailKey(b.Email)) })
	return out[:min(limit, len(out))], nil
}

// UpdateAccount implements Accounts.
func (m *MemoryAccounts) UpdateAccount(_ context.Context, id string, change func(*Account) error, publish func(*Account) error) (*Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[id]
	if !ok {
		return nil, security.ErrNotFound
	}
	before := a
	if err := change(&a); err != nil {
		return nil, err
	}
	if err := CheckFixed(&before, &a); err != nil {
		return nil, err
	}
	a.Version++
	a.Updated = m.now().UTC().Truncate(time.Microsecond)
	if err := publish(&a); err != nil {
		return nil, err
	}
	m.accounts[id] = a
	return &a, nil
}

// accountState is the state of a every credential check depends on.
func accountState(a *Account) security.Account {
	return security.Account{Version: a.Version, Role: a.Role, Disabled: a.Disabled, NotBefore: a.NotBefore}
}

// source reads account state from Accounts for security.Accounts.
type source struct{ accounts Accounts }

func (s source) AccountState(ctx context.Context, subject string) (security.Account, error) {
	a, err := s.accounts.Account(ctx, subject)
	if err != nil {
		return security.Account{}, err
	}
	return accountState(a), nil
}
