package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

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
// timeout (100ms when zero). Keys start with prefix ("sg:" when empty).
// Give the rate-limit store (limits/redislimit) the same client: on one
// Redis (not a Cluster) a guarded request's check of its credential then
// travels in the rate-limit script, one round trip for both. A wrapper
// of the store keeps that only with Unwrap (see security.Store).
func New(rdb redis.UniversalClient, prefix string, timeout time.Duration) *Store {
	if prefix == "" {
		prefix = "sg:"
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

const luaNow = redislua.Now

// A record hash holds fields c (created), l (last used), e (expires), all
// in microseconds; the index is a sorted set of ids scored by expiry.
// With ARGV[3] > 0 it refuses (-1) when the index holds that many live ids.
var createScript = redis.NewScript(luaNow + `
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local max = tonumber(ARGV[3])
if max > 0 and redis.call('ZCARD', KEYS[2]) >= max then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('HSET', KEYS[1], 'c', now, 'l', now)
local exp = tonumber(ARGV[2])
redis.call('PEXPIREAT', KEYS[1], math.ceil(exp / 1000))
redis.call('ZADD', KEYS[2], exp, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last > 0 then redis.call('PEXPIREAT', KEYS[2], math.ceil(tonumber(last[2]) / 1000)) end
return now`)

// rotateScript: -1 gone, -2 reuse (family deleted), else now.
var rotateScript = redis.NewScript(luaNow + `
local f = redis.call('HMGET', KEYS[1], 'r', 'e')
if not f[1] then return -1 end
if tonumber(f[2]) <= now then redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[4]) return -1 end
if f[1] ~= ARGV[1] then redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[4]) return -2 end
redis.call('HSET', KEYS[1], 'r', ARGV[2], 'a', ARGV[3], 'l', now)
return now`)

// gateFunc is the Check of every credential kind as a Lua function, so
// that a rate-limit script on the same Redis can run it first (see Gate).
// gk = {record, account}; ga = {kind (a, s or k), jti, account stamp}.
// It returns 0 when the credential holds, 1 when it is dead, 2 when the
// account is not in the state of the stamp given, 3 when a key has no mark.
const gateFunc = `local function gate(gk, ga, now)
  local kind, v = ga[1], ga[3]
  local r
  if kind == 'a' then
    r = redis.call('HMGET', gk[1], 'a', 'e', 'v')
    if r[1] ~= ga[2] or tonumber(r[2]) <= now then return 1 end
  elseif kind == 's' then
    r = redis.call('HMGET', gk[1], 'h', 'e', 'v')
    if not r[2] or tonumber(r[2]) <= now then return 1 end
  else
    r = redis.call('HMGET', gk[1], 'x', 'e', 'v')
    if r[1] then return 1 end
    if not r[2] then return 3 end
    if tonumber(r[2]) <= now then return 1 end
  end
  if v ~= '' then
    local a = redis.call('HMGET', gk[2], 's', 'nb')
    if a[1] ~= v then return 2 end
    if tonumber(r[3] or 0) < tonumber(a[2] or 0) then return 1 end
  end
  if kind == 's' then redis.call('HSET', gk[1], 'l', now) end
  return 0
end
`

var checkScript = redis.NewScript(luaNow + gateFunc + `return gate(KEYS, ARGV, now)`)

// putAccountScript writes account state unless a newer version, or this
// very state, is held, and returns what is held: {version, role, disabled,
// not before, stamp}.
var putAccountScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 'r', 'd', 'nb', 's')
if cur[1] and tonumber(cur[1]) > tonumber(ARGV[1]) then return cur end
if cur[1] and tonumber(cur[1]) == tonumber(ARGV[1]) and cur[2] == ARGV[2] and tonumber(cur[3]) == tonumber(ARGV[3]) and tonumber(cur[4]) == tonumber(ARGV[4]) then return cur end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'r', ARGV[2], 'd', ARGV[3], 'nb', ARGV[4], 's', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]}`)

// markScript marks an API key live (fields e, v), unless ARGV[1] is 1 and
// a mark or revocation exists; 1 when it wrote. The mark lives until the
// key expires (e), or ARGV[5] ms at most. With ARGV[6] > 0 it refuses (-1)
// when the index (the subject's keys, revocations still held included)
// holds that many.
var markScript = redis.NewScript(luaNow + `
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local exp = tonumber(ARGV[3])
if exp <= now then return 0 end
local max = tonumber(ARGV[6])
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= max then return -1 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'e', exp, 'v', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], math.ceil(math.min(exp, now + tonumber(ARGV[5]) * 1000) / 1000))
redis.call('ZADD', KEYS[2], exp, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last > 0 then redis.call('PEXPIREAT', KEYS[2], math.ceil(tonumber(last[2]) / 1000)) end
return 1`)

// revokeKeyScript replaces a key's mark by a revocation (field x) kept
// for ARGV[3] microseconds (security.KeyRevocationTTL), or until the key
// expires (ARGV[2]) when that is sooner. It stays in the index until then,
// so that it counts toward the subject's cap.
var revokeKeyScript = redis.NewScript(luaNow + `
local exp = math.max(math.min(tonumber(ARGV[2]), now + tonumber(ARGV[3])), now + 1000)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'x', 1, 'e', exp)
redis.call('PEXPIREAT', KEYS[1], math.ceil(exp / 1000))
redis.call('ZADD', KEYS[2], exp, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last > 0 then redis.call('PEXPIREAT', KEYS[2], math.ceil(tonumber(last[2]) / 1000)) end
return 1`)

// deleteScript removes one record and its index entry; 1 when it existed.
var deleteScript = redis.NewScript(luaNow + `
local e = redis.call('HGET', KEYS[1], 'e')
redis.call('ZREM', KEYS[2], ARGV[1])
if not e then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(e) <= now then return 0 end
return 1`)

// listScript returns every live record of an index as flat field lists.
var listScript = redis.NewScript(luaNow + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for _, id in ipairs(ids) do
  local h = redis.call('HGETALL', ARGV[1] .. id)
  if #h > 0 then
    table.insert(out, id)
    table.insert(out, h)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out`)

// getScript returns a live record's fields.
var getScript = redis.NewScript(luaNow + `
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= now then return false end
return redis.call('HGETALL', KEYS[1])`)

// revokeAllScript deletes every record listed in the given indexes,
// except, in the index of API keys (number ARGV[#KEYS + 1]), the
// revocations of single keys (field x), which stay listed.
var revokeAllScript = redis.NewScript(`
local keys = tonumber(ARGV[#KEYS + 1])
for i = 1, #KEYS do
  local ids = redis.call('ZRANGE', KEYS[i], 0, -1)
  for _, id in ipairs(ids) do
    if i ~= keys or redis.call('HEXISTS', ARGV[i] .. id, 'x') == 0 then
      redis.call('DEL', ARGV[i] .. id)
      redis.call('ZREM', KEYS[i], id)
    end
  end
end
return 1`)

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
	now, err := createScript.Run(ctx, s.rdb, []string{key, index}, args...).Int64()
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
	n, err := rotateScript.Run(ctx, s.rdb, []string{s.famKey(subject, id), s.famsKey(subject)},
		presented, nextRefresh, nextAccess, id).Int64()
	switch {
	case err != nil:
		return wrapRedis(err)
	case n == -1:
		return security.ErrNotFound
	case n == -2:
		return security.ErrReused
	}
	return nil
}

// gate returns the keys and arguments of gateFunc for c.
func (s *Store) gate(c security.Check) (keys []string, args []any) {
	var record, kind string
	switch c.Kind {
	case security.AccessCredential:
		record, kind = s.famKey(c.Subject, c.ID), "a"
	case security.SessionCredential:
		record, kind = s.sesKey(c.Subject, c.ID), "s"
	default:
		record, kind = s.keyKey(c.Subject, c.ID), "k"
	}
	return []string{record, s.acctKey(c.Subject)}, []any{kind, c.JTI, c.AccountStamp}
}

func init() {
	// The shape does not depend on the check's values.
	keys, args := (&Store{}).gate(security.Check{})
	onetrip.RegisterScripter(func(store any) any {
		if s, ok := store.(*Store); ok && s != nil { // nil: a broken Unwrap
			return scripter{s}
		}
		return nil
	}, onetrip.Gate{Fn: gateFunc, NK: len(keys), NA: len(args)})
}

// scripter expresses a Store's checks as gateFunc, for a rate-limit script
// on the same client to run first (see internal/onetrip).
type scripter struct{ s *Store }

// CheckScript returns c as gateFunc, its keys and arguments, on the
// store's client.
func (sc scripter) CheckScript(c security.Check) (client any, fn string, keys []string, args []any) {
	keys, args = sc.s.gate(c)
	return sc.s.rdb, gateFunc, keys, args
}

// CheckFailed maps a non-zero code of gateFunc to Check's error.
func (scripter) CheckFailed(code int64) error { return gateError(code) }

// gateError maps gateFunc's codes to Check's errors.
func gateError(code int64) error {
	switch code {
	case 0:
		return nil
	case 2:
		return security.ErrStale
	case 3:
		return security.ErrUnmarked
	}
	return security.ErrNotFound
}

// Check implements security.Checker: one script call.
func (s *Store) Check(ctx context.Context, c security.Check) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	keys, args := s.gate(c)
	code, err := checkScript.Run(ctx, s.rdb, keys, args...).Int64()
	if err != nil {
		return wrapRedis(err)
	}
	return gateError(code)
}

// PutAccount implements security.Store.
func (s *Store) PutAccount(ctx context.Context, subject string, a security.Account) (security.Account, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	raw, err := putAccountScript.Run(ctx, s.rdb, []string{s.acctKey(subject)},
		a.Version, a.Role, boolInt(a.Disabled), a.NotBefore, security.NewID(), security.AccountTTL.Milliseconds()).Slice()
	if err != nil {
		return security.Account{}, wrapRedis(err)
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

func (s *Store) del(ctx context.Context, key, index, id string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := deleteScript.Run(ctx, s.rdb, []string{key, index}, id).Int64()
	if err != nil {
		return wrapRedis(err)
	}
	if n != 1 {
		return security.ErrNotFound
	}
	return nil
}

func (s *Store) RevokeFamily(ctx context.Context, subject, id string) error {
	return s.del(ctx, s.famKey(subject, id), s.famsKey(subject), id)
}

// list returns id -> field map of every live record of an index.
func (s *Store) list(ctx context.Context, index, recordPrefix string) ([]string, []map[string]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	raw, err := listScript.Run(ctx, s.rdb, []string{index}, recordPrefix).Slice()
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
	err := revokeAllScript.Run(ctx, s.rdb,
		[]string{s.famsKey(subject), s.sessKey(subject), s.keysKey(subject)},
		tag+":fam:", tag+":ses:", tag+":key:", 3).Err()
	return wrapRedis(err)
}

func (s *Store) CreateSession(ctx context.Context, sess *security.Session, max int) error {
	now, err := s.create(ctx, s.sesKey(sess.Subject, sess.ID), s.sessKey(sess.Subject), sess.ID, sess.Expires, max,
		"e", usec(sess.Expires), "h", string(sess.SecretHash), "x", string(sess.CSRFHash), "role", sess.Role, "d", sess.Device, "v", sess.AccountVersion)
	if err != nil {
		return err
	}
	sess.Created, sess.LastUsed = now, now
	return nil
}

func (s *Store) Session(ctx context.Context, subject, id string) (*security.Session, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	raw, err := getScript.Run(ctx, s.rdb, []string{s.sesKey(subject, id)}).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, security.ErrNotFound
	} else if err != nil {
		return nil, wrapRedis(err)
	}
	return sessionFrom(subject, id, pairs(raw)), nil
}

func sessionFrom(subject, id string, m map[string]string) *security.Session {
	v, _ := toInt(m["v"])
	return &security.Session{ID: id, Subject: subject, Role: m["role"], Device: m["d"], SecretHash: []byte(m["h"]), CSRFHash: []byte(m["x"]), AccountVersion: v,
		Created: fromUsec(m["c"]), LastUsed: fromUsec(m["l"]), Expires: fromUsec(m["e"])}
}

func (s *Store) DeleteSession(ctx context.Context, subject, id string) error {
	return s.del(ctx, s.sesKey(subject, id), s.sessKey(subject), id)
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
	n, err := markScript.Run(ctx, s.rdb, []string{s.keyKey(k.Subject, k.ID), s.keysKey(k.Subject)},
		boolInt(ifAbsent), k.ID, usec(k.Expires), k.AccountVersion, security.MarkTTL.Milliseconds(), max).Int64()
	switch {
	case err != nil:
		return false, wrapRedis(err)
	case n == -1:
		return false, security.ErrTooMany
	}
	return n == 1, nil
}

// RevokeKey implements security.Store.
func (s *Store) RevokeKey(ctx context.Context, subject, id string, expires time.Time) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	err := revokeKeyScript.Run(ctx, s.rdb, []string{s.keyKey(subject, id), s.keysKey(subject)}, id, usec(expires),
		security.KeyRevocationTTL.Microseconds()).Err()
	return wrapRedis(err)
}

// Preload loads every script of the store into Redis, so that the first
// calls after a start do not each pay a round trip to load one.
func (s *Store) Preload(ctx context.Context) error {
	return wrapRedis(redislua.Load(ctx, s.rdb, createScript, rotateScript, checkScript, putAccountScript, markScript,
		revokeKeyScript, deleteScript, listScript, getScript, revokeAllScript))
}

// Ping implements security.Store.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return wrapRedis(s.rdb.Ping(ctx).Err())
}
