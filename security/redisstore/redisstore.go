package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/ctxkey"
	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/internal/redislua"
	"github.com/specguard/specguard/security"
)

// Store keeps security state in Redis (or a Redis Cluster), so every
// instance shares one truth. Each state transition is one Lua script; all
// keys of a subject share the hash tag {u:<subject>} so a script never
// crosses slots; every key expires with what it protects; times come from
// Redis TIME, so instances' clocks do not matter.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
}

var _ security.Store = (*Store)(nil)

// New returns a store using rdb. Every call is bounded by
// timeout (100ms when zero). Keys start with prefix ("sg:" when empty),
// which may hold no brace: the keys of a subject are put in one Cluster
// slot by the hash tag {u:<subject>} after it, and a tag in the prefix
// ({} included) would take its place. New panics on such a prefix.
// Give the rate-limit store (limits/redislimit) the same client: on one
// Redis (not a Cluster) a guarded request's check of its credential then
// travels in the rate-limit script, one round trip for both. A wrapper
// of the store keeps that only with Unwrap (see security.Store).
func New(rdb redis.UniversalClient, prefix string, timeout time.Duration) *Store {
	if prefix == "" {
		prefix = "sg:"
	}
	if strings.ContainsAny(prefix, "{}") {
		panic(fmt.Sprintf("redisstore.New: prefix %q holds a brace, which Redis Cluster reads as a hash tag", prefix))
	}
	if timeout <= 0 {
		timeout = 100 * time.Millisecond
	}
	return &Store{rdb: rdb, prefix: prefix, timeout: timeout}
}

func (s *Store) tag(subject string) string { return s.prefix + "{u:" + subject + "}" }

// Keys of one subject: the record hashes, the index sets that list them,
// and the mirrored account state.
func (s *Store) famKey(sub, id string) string { return s.tag(sub) + ":fam:" + id }
func (s *Store) famsKey(sub string) string    { return s.tag(sub) + ":fams" }
func (s *Store) sesKey(sub, id string) string { return s.tag(sub) + ":ses:" + id }
func (s *Store) sessKey(sub string) string    { return s.tag(sub) + ":sess" }
func (s *Store) keyKey(sub, id string) string { return s.tag(sub) + ":key:" + id }
func (s *Store) keysKey(sub string) string    { return s.tag(sub) + ":keys" }
func (s *Store) acctKey(sub string) string    { return s.tag(sub) + ":acct" }

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func usec(t time.Time) int64 { return t.UnixMicro() }

func fromUsec(v any) time.Time {
	n, _ := toInt(v)
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(n)
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func toStr(v any) string {
	s, _ := v.(string)
	return s
}

func wrapRedis(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: redis: %v", security.ErrUnavailable, err)
}

func (s *Store) create(ctx context.Context, key, index, id string, expires time.Time, max int, fields ...any) (time.Time, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	args := append([]any{id, usec(expires), max}, fields...)
	now, err := redislua.Create.Run(ctx, s.rdb, []string{key, index}, args...).Int64()
	if err != nil {
		return time.Time{}, wrapRedis(err)
	}
	if now == -1 {
		return time.Time{}, security.ErrTooMany
	}
	return time.UnixMicro(now), nil
}

func (s *Store) CreateFamily(ctx context.Context, f *security.Family, max int) error {
	now, err := s.create(ctx, s.famKey(f.Subject, f.ID), s.famsKey(f.Subject), f.ID, f.Expires, max,
		"e", usec(f.Expires), "r", f.RefreshJTI, "a", f.AccessJTI, "d", f.Device, "v", f.AccountVersion)
	if err != nil {
		return err
	}
	f.Created, f.LastUsed = now, now
	return nil
}

func (s *Store) RotateFamily(ctx context.Context, subject, id, presented, nextRefresh, nextAccess string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var n int64
	err := s.durable(ctx, subject, func(c redis.Scripter) (bool, error) {
		var err error
		n, err = redislua.Rotate.Run(ctx, c, []string{s.famKey(subject, id), s.famsKey(subject)},
			presented, nextRefresh, nextAccess, id).Int64()
		return n == -2, err // a reuse revoked the family
	})
	switch {
	case err != nil:
		return err
	case n == -1:
		return security.ErrNotFound
	case n == -2:
		return security.ErrReused
	}
	return nil
}

// check returns the keys and arguments of the credential check
// (redislua.CheckCredential) for c.
func (s *Store) check(c security.Check) (keys []string, args []any) {
	var record, kind string
	switch c.Kind {
	case security.AccessCredential:
		record, kind = s.famKey(c.Subject, c.ID), "a"
	case security.SessionCredential:
		record, kind = s.sesKey(c.Subject, c.ID), "s"
	case security.KeyCredential:
		record, kind = s.keyKey(c.Subject, c.ID), "k"
	default: // no such kind: the script finds it dead, as the memory store does
		record, kind = s.keyKey(c.Subject, c.ID), "?"
	}
	return []string{record, s.acctKey(c.Subject)}, []any{kind, c.JTI, c.AccountStamp}
}

func init() {
	onetrip.RegisterScripter(func(store any) any {
		if s, ok := store.(*Store); ok && s != nil { // nil: a broken Unwrap
			return scripter{s}
		}
		return nil
	})
}

// scripter gives a Store's checks to the rate-limit store on the same
// client, which runs them in its own script (redislua.CheckAndAllow; see
// internal/onetrip).
type scripter struct{ s *Store }

// CheckScript returns the keys and arguments of c's check, on the store's
// client.
func (sc scripter) CheckScript(c security.Check) (client any, keys []string, args []any) {
	keys, args = sc.s.check(c)
	return sc.s.rdb, keys, args
}

// CheckFailed maps a code of the check to Check's error.
func (scripter) CheckFailed(code int64) error { return redislua.CheckError(code) }

// Check implements security.Checker: one script call.
func (s *Store) Check(ctx context.Context, c security.Check) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	keys, args := s.check(c)
	code, err := redislua.CheckCredential.Run(ctx, s.rdb, keys, args...).Int64()
	if err != nil {
		return wrapRedis(err)
	}
	return redislua.CheckError(code)
}

// PutAccount implements security.Store.
func (s *Store) PutAccount(ctx context.Context, subject string, a security.Account) (security.Account, error) {
	// The script compares versions as Lua numbers, exact up to 2^53.
	if a.Version > security.MaxAccountVersion || a.NotBefore > security.MaxAccountVersion {
		return security.Account{}, fmt.Errorf("%w: account %s: version %d or not-before %d past MaxAccountVersion", security.ErrUnavailable, subject, a.Version, a.NotBefore)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var raw []any
	err := s.durable(ctx, subject, func(c redis.Scripter) (bool, error) {
		var err error
		raw, err = redislua.PutAccount.Run(ctx, c, []string{s.acctKey(subject)},
			a.Version, a.Role, boolInt(a.Disabled), a.NotBefore, security.NewID(), security.AccountTTL.Milliseconds()).Slice()
		// Accounts filling its mirror from the database takes nothing
		// away: lost, the database is read again. A change published is
		// waited for, even where the store held no state.
		return ctx.Value(ctxkey.Fill) == nil, err
	})
	if err != nil {
		return security.Account{}, err
	}
	return accountFrom(raw), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func accountFrom(raw []any) security.Account {
	var a security.Account
	if len(raw) == 5 {
		a.Version, _ = toInt(raw[0])
		a.Role = toStr(raw[1])
		d, _ := toInt(raw[2])
		a.Disabled = d == 1
		a.NotBefore, _ = toInt(raw[3])
		a.Stamp = toStr(raw[4])
	}
	return a
}

// Account implements security.Store.
func (s *Store) Account(ctx context.Context, subject string) (*security.Account, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	raw, err := s.rdb.HMGet(ctx, s.acctKey(subject), "v", "r", "d", "nb", "s").Result()
	if err != nil {
		return nil, wrapRedis(err)
	}
	if raw[0] == nil {
		return nil, security.ErrNotFound
	}
	a := accountFrom(raw)
	return &a, nil
}

func (s *Store) del(ctx context.Context, subject, key, index, id string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var n int64
	err := s.durable(ctx, subject, func(c redis.Scripter) (bool, error) {
		var err error
		n, err = redislua.Delete.Run(ctx, c, []string{key, index}, id).Int64()
		return true, err // found gone, it waits for the call that did it
	})
	if err != nil {
		return err
	}
	if n != 1 {
		return security.ErrNotFound
	}
	return nil
}

func (s *Store) RevokeFamily(ctx context.Context, subject, id string) error {
	return s.del(ctx, subject, s.famKey(subject, id), s.famsKey(subject), id)
}

// list returns id -> field map of every live record of an index.
func (s *Store) list(ctx context.Context, index, recordPrefix string) ([]string, []map[string]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	raw, err := redislua.List.Run(ctx, s.rdb, []string{index}, recordPrefix).Slice()
	if err != nil {
		return nil, nil, wrapRedis(err)
	}
	var ids []string
	var recs []map[string]string
	for i := 0; i+1 < len(raw); i += 2 {
		ids = append(ids, toStr(raw[i]))
		recs = append(recs, pairs(raw[i+1]))
	}
	return ids, recs, nil
}

func pairs(v any) map[string]string {
	list, _ := v.([]any)
	m := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		m[toStr(list[i])] = toStr(list[i+1])
	}
	return m
}

func (s *Store) Families(ctx context.Context, subject string) ([]security.Family, error) {
	ids, recs, err := s.list(ctx, s.famsKey(subject), s.tag(subject)+":fam:")
	if err != nil {
		return nil, err
	}
	out := make([]security.Family, 0, len(ids))
	for i, id := range ids {
		m := recs[i]
		v, _ := toInt(m["v"])
		out = append(out, security.Family{ID: id, Subject: subject, Device: m["d"], RefreshJTI: m["r"], AccessJTI: m["a"], AccountVersion: v,
			Created: fromUsec(m["c"]), LastUsed: fromUsec(m["l"]), Expires: fromUsec(m["e"])})
	}
	slices.SortFunc(out, func(a, b security.Family) int { return b.Created.Compare(a.Created) }) // newest first
	return out, nil
}

// RevokeSubject implements security.Store. Key revocations (field x) are kept: only
// live marks are listed in the index it walks.
func (s *Store) RevokeSubject(ctx context.Context, subject string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	tag := s.tag(subject)
	return s.durable(ctx, subject, func(c redis.Scripter) (bool, error) {
		return true, redislua.RevokeAll.Run(ctx, c,
			[]string{s.famsKey(subject), s.sessKey(subject), s.keysKey(subject)},
			tag+":fam:", tag+":ses:", tag+":key:", 3).Err()
	})
}

func (s *Store) CreateSession(ctx context.Context, sess *security.Session, max int) error {
	now, err := s.create(ctx, s.sesKey(sess.Subject, sess.ID), s.sessKey(sess.Subject), sess.ID, sess.Expires, max,
		"e", usec(sess.Expires), "h", string(sess.SecretHash), "x", string(sess.CSRFHash), "role", sess.Role, "d", sess.Device, "v", sess.AccountVersion, "i", sess.Idle.Microseconds())
	if err != nil {
		return err
	}
	sess.Created, sess.LastUsed = now, now
	return nil
}

func (s *Store) Session(ctx context.Context, subject, id string) (*security.Session, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	raw, err := redislua.Get.Run(ctx, s.rdb, []string{s.sesKey(subject, id)}).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, security.ErrNotFound
	} else if err != nil {
		return nil, wrapRedis(err)
	}
	return sessionFrom(subject, id, pairs(raw)), nil
}

func sessionFrom(subject, id string, m map[string]string) *security.Session {
	v, _ := toInt(m["v"])
	idle, _ := toInt(m["i"])
	return &security.Session{ID: id, Subject: subject, Role: m["role"], Device: m["d"], SecretHash: []byte(m["h"]), CSRFHash: []byte(m["x"]), AccountVersion: v,
		Created: fromUsec(m["c"]), LastUsed: fromUsec(m["l"]), Expires: fromUsec(m["e"]), Idle: time.Duration(idle) * time.Microsecond}
}

func (s *Store) DeleteSession(ctx context.Context, subject, id string) error {
	return s.del(ctx, subject, s.sesKey(subject, id), s.sessKey(subject), id)
}

func (s *Store) Sessions(ctx context.Context, subject string) ([]security.Session, error) {
	ids, recs, err := s.list(ctx, s.sessKey(subject), s.tag(subject)+":ses:")
	if err != nil {
		return nil, err
	}
	out := make([]security.Session, 0, len(ids))
	for i, id := range ids {
		out = append(out, *sessionFrom(subject, id, recs[i]))
	}
	slices.SortFunc(out, func(a, b security.Session) int { return b.Created.Compare(a.Created) }) // newest first
	return out, nil
}

// MarkKey implements security.Store.
func (s *Store) MarkKey(ctx context.Context, k *security.APIKey, ifAbsent bool, max int) (bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := redislua.MarkKey.Run(ctx, s.rdb, []string{s.keyKey(k.Subject, k.ID), s.keysKey(k.Subject)},
		boolInt(ifAbsent), k.ID, usec(k.Expires), k.AccountVersion, security.MarkTTL.Milliseconds(), max).Int64()
	switch {
	case err != nil:
		return false, wrapRedis(err)
	case n == -1:
		return false, security.ErrTooMany
	case n == -2:
		return false, security.ErrNotFound
	}
	return n == 1, nil
}

// RevokeKey implements security.Store.
func (s *Store) RevokeKey(ctx context.Context, subject, id string, expires time.Time) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.durable(ctx, subject, func(c redis.Scripter) (bool, error) {
		return true, redislua.RevokeKey.Run(ctx, c, []string{s.keyKey(subject, id), s.keysKey(subject)}, id, usec(expires),
			security.KeyRevocationTTL.Microseconds()).Err()
	})
}

// Preload loads every script of the store into Redis, so that the first
// calls after a start do not each pay a round trip to load one.
func (s *Store) Preload(ctx context.Context) error {
	if err := redislua.Load(ctx, s.rdb, redislua.CredentialScripts()...); err != nil {
		return wrapRedis(err)
	}
	// A revocation counts the replicas it must wait for (see durable): a
	// server that will not say is found now, not at the first logout.
	conn, _, err := s.master(ctx, "")
	if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
		cmd := "+role"
		if _, ok := s.rdb.(*redis.ClusterClient); ok {
			cmd = "+cluster|nodes"
		}
		return fmt.Errorf("%w: redis: the user may not ask which replicas the master has (%v): grant it %s (ACL SETUSER), for a revocation waits until they all have it", security.ErrUnavailable, err, cmd)
	}
	if err != nil {
		return fmt.Errorf("%w: redis: counting the replicas a revocation waits for: %v", security.ErrUnavailable, err)
	}
	if conn != nil {
		conn.Close()
	}
	return nil
}

// Ping implements security.Store.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return wrapRedis(s.rdb.Ping(ctx).Err())
}
