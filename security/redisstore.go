package security

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps security state in Redis (or a Redis Cluster), so every
// instance shares one truth. Each state transition is one Lua script; all
// keys of a subject share the hash tag {u:<subject>} so a script never
// crosses slots; every key expires with what it protects; times come from
// Redis TIME, so instances' clocks do not matter.
type RedisStore struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store using rdb. Every call is bounded by
// timeout (100ms when zero). Keys start with prefix ("sg:" when empty).
func NewRedisStore(rdb redis.UniversalClient, prefix string, timeout time.Duration) *RedisStore {
	if prefix == "" {
		prefix = "sg:"
	}
	if timeout <= 0 {
		timeout = 100 * time.Millisecond
	}
	return &RedisStore{rdb: rdb, prefix: prefix, timeout: timeout}
}

func (s *RedisStore) tag(subject string) string { return s.prefix + "{u:" + subject + "}" }

// Keys of one subject: the record hashes and the index sets that list them.
func (s *RedisStore) famKey(sub, id string) string { return s.tag(sub) + ":fam:" + id }
func (s *RedisStore) famsKey(sub string) string    { return s.tag(sub) + ":fams" }
func (s *RedisStore) sesKey(sub, id string) string { return s.tag(sub) + ":ses:" + id }
func (s *RedisStore) sessKey(sub string) string    { return s.tag(sub) + ":sess" }
func (s *RedisStore) keyKey(sub, id string) string { return s.tag(sub) + ":key:" + id }
func (s *RedisStore) keysKey(sub string) string    { return s.tag(sub) + ":keys" }

func (s *RedisStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
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

// luaNow is the prelude of every script: Redis TIME in microseconds.
const luaNow = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
`

// A record hash holds fields c (created), l (last used), e (expires), all
// in microseconds; the index is a sorted set of ids scored by expiry.
var createScript = redis.NewScript(luaNow + `
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HSET', KEYS[1], 'c', now, 'l', now)
local exp = tonumber(ARGV[2])
redis.call('PEXPIREAT', KEYS[1], math.ceil(exp / 1000))
redis.call('ZADD', KEYS[2], exp, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], math.ceil(tonumber(last[2]) / 1000))
return now`)

// rotateScript: -1 gone, -2 reuse (family deleted), else now.
var rotateScript = redis.NewScript(luaNow + `
local f = redis.call('HMGET', KEYS[1], 'r', 'e')
if not f[1] then return -1 end
if tonumber(f[2]) <= now then redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[4]) return -1 end
if f[1] ~= ARGV[1] then redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[4]) return -2 end
redis.call('HSET', KEYS[1], 'r', ARGV[2], 'a', ARGV[3], 'l', now)
return now`)

// checkScript: 1 when the access jti is the family's current one.
var checkScript = redis.NewScript(luaNow + `
local f = redis.call('HMGET', KEYS[1], 'a', 'e')
if f[1] == ARGV[1] and tonumber(f[2]) > now then return 1 end
return 0`)

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

// touchScript returns a live record's fields and marks it used.
var touchScript = redis.NewScript(luaNow + `
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= now then return false end
redis.call('HSET', KEYS[1], 'l', now)
return redis.call('HGETALL', KEYS[1])`)

// revokeAllScript deletes every record listed in the given indexes.
var revokeAllScript = redis.NewScript(`
for i = 1, #KEYS do
  local ids = redis.call('ZRANGE', KEYS[i], 0, -1)
  for _, id in ipairs(ids) do redis.call('DEL', ARGV[i] .. id) end
  redis.call('DEL', KEYS[i])
end
return 1`)

func wrapRedis(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: redis: %v", ErrUnavailable, err)
}

func (s *RedisStore) create(ctx context.Context, key, index, id string, expires time.Time, fields ...any) (time.Time, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	args := append([]any{id, usec(expires)}, fields...)
	now, err := createScript.Run(ctx, s.rdb, []string{key, index}, args...).Int64()
	if err != nil {
		return time.Time{}, wrapRedis(err)
	}
	return time.UnixMicro(now), nil
}

func (s *RedisStore) CreateFamily(ctx context.Context, f *Family) error {
	now, err := s.create(ctx, s.famKey(f.Subject, f.ID), s.famsKey(f.Subject), f.ID, f.Expires,
		"e", usec(f.Expires), "r", f.RefreshJTI, "a", f.AccessJTI, "d", f.Device)
	if err != nil {
		return err
	}
	f.Created, f.LastUsed = now, now
	return nil
}

func (s *RedisStore) RotateFamily(ctx context.Context, subject, id, presented, nextRefresh, nextAccess string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := rotateScript.Run(ctx, s.rdb, []string{s.famKey(subject, id), s.famsKey(subject)},
		presented, nextRefresh, nextAccess, id).Int64()
	switch {
	case err != nil:
		return wrapRedis(err)
	case n == -1:
		return ErrNotFound
	case n == -2:
		return ErrReused
	}
	return nil
}

func (s *RedisStore) CheckAccess(ctx context.Context, subject, family, jti string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	ok, err := checkScript.Run(ctx, s.rdb, []string{s.famKey(subject, family)}, jti).Int64()
	if err != nil {
		return wrapRedis(err)
	}
	if ok != 1 {
		return ErrNotFound
	}
	return nil
}

func (s *RedisStore) del(ctx context.Context, key, index, id string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := deleteScript.Run(ctx, s.rdb, []string{key, index}, id).Int64()
	if err != nil {
		return wrapRedis(err)
	}
	if n != 1 {
		return ErrNotFound
	}
	return nil
}

func (s *RedisStore) RevokeFamily(ctx context.Context, subject, id string) error {
	return s.del(ctx, s.famKey(subject, id), s.famsKey(subject), id)
}

// list returns id -> field map of every live record of an index.
func (s *RedisStore) list(ctx context.Context, index, recordPrefix string) ([]string, []map[string]string, error) {
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

func (s *RedisStore) Families(ctx context.Context, subject string) ([]Family, error) {
	ids, recs, err := s.list(ctx, s.famsKey(subject), s.tag(subject)+":fam:")
	if err != nil {
		return nil, err
	}
	out := make([]Family, 0, len(ids))
	for i, id := range ids {
		m := recs[i]
		out = append(out, Family{ID: id, Subject: subject, Device: m["d"], RefreshJTI: m["r"], AccessJTI: m["a"],
			Created: fromUsec(m["c"]), LastUsed: fromUsec(m["l"]), Expires: fromUsec(m["e"])})
	}
	sortNewest(out, func(f Family) time.Time { return f.Created })
	return out, nil
}

func (s *RedisStore) RevokeSubject(ctx context.Context, subject string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	tag := s.tag(subject)
	err := revokeAllScript.Run(ctx, s.rdb,
		[]string{s.famsKey(subject), s.sessKey(subject), s.keysKey(subject)},
		tag+":fam:", tag+":ses:", tag+":key:").Err()
	return wrapRedis(err)
}

func (s *RedisStore) CreateSession(ctx context.Context, sess *Session) error {
	now, err := s.create(ctx, s.sesKey(sess.Subject, sess.ID), s.sessKey(sess.Subject), sess.ID, sess.Expires,
		"e", usec(sess.Expires), "h", string(sess.SecretHash), "role", sess.Role, "d", sess.Device)
	if err != nil {
		return err
	}
	sess.Created, sess.LastUsed = now, now
	return nil
}

func (s *RedisStore) touch(ctx context.Context, key string) (map[string]string, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	raw, err := touchScript.Run(ctx, s.rdb, []string{key}).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, wrapRedis(err)
	}
	return pairs(raw), nil
}

func (s *RedisStore) Session(ctx context.Context, subject, id string) (*Session, error) {
	m, err := s.touch(ctx, s.sesKey(subject, id))
	if err != nil {
		return nil, err
	}
	return sessionFrom(subject, id, m), nil
}

func sessionFrom(subject, id string, m map[string]string) *Session {
	return &Session{ID: id, Subject: subject, Role: m["role"], Device: m["d"], SecretHash: []byte(m["h"]),
		Created: fromUsec(m["c"]), LastUsed: fromUsec(m["l"]), Expires: fromUsec(m["e"])}
}

func (s *RedisStore) DeleteSession(ctx context.Context, subject, id string) error {
	return s.del(ctx, s.sesKey(subject, id), s.sessKey(subject), id)
}

func (s *RedisStore) Sessions(ctx context.Context, subject string) ([]Session, error) {
	ids, recs, err := s.list(ctx, s.sessKey(subject), s.tag(subject)+":ses:")
	if err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(ids))
	for i, id := range ids {
		out = append(out, *sessionFrom(subject, id, recs[i]))
	}
	sortNewest(out, func(s Session) time.Time { return s.Created })
	return out, nil
}

func (s *RedisStore) CreateKey(ctx context.Context, k *APIKey) error {
	now, err := s.create(ctx, s.keyKey(k.Subject, k.ID), s.keysKey(k.Subject), k.ID, k.Expires,
		"e", usec(k.Expires), "h", string(k.SecretHash), "n", k.Name, "p", k.Prefix, "s", strings.Join(k.Scopes, " "))
	if err != nil {
		return err
	}
	k.Created = now
	return nil
}

func keyFrom(subject, id string, m map[string]string, used bool) *APIKey {
	k := &APIKey{ID: id, Subject: subject, Name: m["n"], Prefix: m["p"], Scopes: strings.Fields(m["s"]),
		SecretHash: []byte(m["h"]), Created: fromUsec(m["c"]), Expires: fromUsec(m["e"])}
	if used {
		k.LastUsed = fromUsec(m["l"])
	}
	return k
}

func (s *RedisStore) Key(ctx context.Context, subject, id string) (*APIKey, error) {
	m, err := s.touch(ctx, s.keyKey(subject, id))
	if err != nil {
		return nil, err
	}
	return keyFrom(subject, id, m, true), nil
}

func (s *RedisStore) RevokeKey(ctx context.Context, subject, id string) error {
	return s.del(ctx, s.keyKey(subject, id), s.keysKey(subject), id)
}

func (s *RedisStore) Keys(ctx context.Context, subject string) ([]APIKey, error) {
	ids, recs, err := s.list(ctx, s.keysKey(subject), s.tag(subject)+":key:")
	if err != nil {
		return nil, err
	}
	out := make([]APIKey, 0, len(ids))
	for i, id := range ids {
		// "l" equals "c" until first use; report never-used keys as such.
		out = append(out, *keyFrom(subject, id, recs[i], recs[i]["l"] != recs[i]["c"]))
	}
	sortNewest(out, func(k APIKey) time.Time { return k.Created })
	return out, nil
}

func (s *RedisStore) Ping(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return wrapRedis(s.rdb.Ping(ctx).Err())
}

func sortNewest[T any](s []T, created func(T) time.Time) {
	slices.SortFunc(s, func(a, b T) int { return created(b).Compare(created(a)) })
}
