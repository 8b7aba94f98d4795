package redislua

// The credential store's scripts (security/redisstore): every state change
// of a subject's records in one call. A subject's keys share one hash tag,
// so no script crosses slots on a Cluster.

import "github.com/redis/go-redis/v9"

// Codes of the credential check (CheckCredential, and the check in
// CheckAndAllow).
const (
	Holds    = 0 // the credential holds
	Dead     = 1 // revoked, replaced, ended or expired: for good
	Stale    = 2 // the account is not in the state of the stamp given
	Unmarked = 3 // an API key has no mark: its durable record decides
	// Before: minted before its account's not-before (a logout
	// everywhere): ended, unless that change is set back (its commit
	// failed); not remembered as dead, as Dead is.
	Before = 4
)

// Keys and arguments of the credential check: keys {record, account};
// arguments {kind (a for an access token's family, s for a session, k for
// an API key; any other holds nothing), the access token's jti, the account
// stamp ("" for none)}.
const (
	CheckKeys = 2
	CheckArgs = 3
)

// checkFunc is the check of every credential kind as a Lua function, which
// CheckCredential runs alone and CheckAndAllow before the tiers. It returns
// one of the codes above. A session's check finds it dead once unused past
// its idle bound (field i), and notes its last use.
const checkFunc = `local function check(gk, ga, now)
  local kind, v = ga[1], ga[3]
  local r
  if kind == 'a' then
    r = redis.call('HMGET', gk[1], 'a', 'e', 'v')
    if r[1] ~= ga[2] or tonumber(r[2]) <= now then return 1 end
  elseif kind == 's' then
    r = redis.call('HMGET', gk[1], 'h', 'e', 'v', 'l', 'i')
    if not r[2] or tonumber(r[2]) <= now then return 1 end
    local idle = tonumber(r[5] or 0)
    if idle > 0 and tonumber(r[4] or 0) + idle <= now then return 1 end
  elseif kind == 'k' then
    r = redis.call('HMGET', gk[1], 'x', 'e', 'v')
    if r[1] then return 1 end
    if not r[2] then return 3 end
    if tonumber(r[2]) <= now then return 1 end
  else
    return 1
  end
  if v ~= '' then
    local a = redis.call('HMGET', gk[2], 's', 'nb')
    if a[1] ~= v then return 2 end
    if tonumber(r[3] or 0) < tonumber(a[2] or 0) then return 4 end
  end
  if kind == 's' then redis.call('HSET', gk[1], 'l', now) end
  return 0
end
`

// indexed is the end of a script that lists a record: it adds id (a Lua
// expression) to the index KEYS[2] until exp, drops the ids expired, and
// keeps the index as long as its last id.
func indexed(id string) string {
	return "redis.call('ZADD', KEYS[2], exp, " + id + `)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #last > 0 then redis.call('PEXPIREAT', KEYS[2], math.ceil(tonumber(last[2]) / 1000)) end
`
}

// fullFunc reports whether index idx lists max records that are live. An
// index lists an id until the record's own expiry, but the record may end
// sooner: a key's mark lasts MarkTTL at most (and a key whose database
// insert failed never gets a record), a maxmemory policy may evict any
// record, and a session ends once idle past its bound (see idleFunc).
// Those entries (and an idle session's record) are dropped, only when the
// index looks full, so that they do not hold the subject's cap for up to
// a year. rec is the record key of id, which gives the other records'
// prefix.
const fullFunc = idleFunc + `local function full(idx, rec, id, max, now)
  if redis.call('ZCARD', idx) < max then return false end
  local prefix = string.sub(rec, 1, #rec - #id)
  for _, x in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    local key = prefix .. x
    if redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', idx, x)
    elseif idle(key, now) then
      redis.call('DEL', key)
      redis.call('ZREM', idx, x)
    end
  end
  return redis.call('ZCARD', idx) >= max
end
`

// CheckCredential runs the credential check alone (KEYS and ARGV as
// CheckKeys and CheckArgs say) and returns its code.
var CheckCredential = redis.NewScript(Now + checkFunc + `return check(KEYS, ARGV, now)`)

// Create writes a record (KEYS[1]) and lists its id (ARGV[1]) in its index
// (KEYS[2]) until it expires (ARGV[2]); ARGV[4..] are its fields. A
// record hash holds fields c (created), l (last used), e (expires), all
// in microseconds; the index is a sorted set of ids scored by expiry.
// With ARGV[3] > 0 it refuses (-1) when the index lists that many ids whose
// records still exist (see fullFunc).
// It returns now; for a record already there, when it was made (this very
// create run again, as go-redis retries a call whose answer was lost: ids
// are fresh per call), at any cap.
var Create = redis.NewScript(Now + fullFunc + `
local made = redis.call('HGET', KEYS[1], 'c')
if made then return tonumber(made) end
local max = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if max > 0 and full(KEYS[2], KEYS[1], ARGV[1], max, now) then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('HSET', KEYS[1], 'c', now, 'l', now)
local exp = tonumber(ARGV[2])
redis.call('PEXPIREAT', KEYS[1], math.ceil(exp / 1000))
` + indexed("ARGV[1]") + `return now`)

// Rotate moves a token family (KEYS[1], listed in KEYS[2] as ARGV[4]) on
// from the refresh token presented (ARGV[1]) to the next refresh and access
// tokens (ARGV[2], ARGV[3]): -1 gone, -2 reuse (family deleted), else now.
// A family already on those next tokens is this very rotation run again
// (a client retrying a call whose answer was lost: only that call knows
// them), which succeeds rather than counting as reuse.
var Rotate = redis.NewScript(Now + `
local f = redis.call('HMGET', KEYS[1], 'r', 'e', 'a')
if not f[1] then return -1 end
if tonumber(f[2]) <= now then redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[4]) return -1 end
if f[1] == ARGV[2] and f[3] == ARGV[3] then return now end
if f[1] ~= ARGV[1] then redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[4]) return -2 end
redis.call('HSET', KEYS[1], 'r', ARGV[2], 'a', ARGV[3], 'l', now)
return now`)

// PutAccount writes account state unless a newer version, or this
// very state, is held, and returns what is held: {version, role, disabled,
// not before, stamp}.
var PutAccount = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 'r', 'd', 'nb', 's')
if cur[1] and tonumber(cur[1]) > tonumber(ARGV[1]) then return cur end
if cur[1] and tonumber(cur[1]) == tonumber(ARGV[1]) and cur[2] == ARGV[2] and tonumber(cur[3]) == tonumber(ARGV[3]) and tonumber(cur[4]) == tonumber(ARGV[4]) then return cur end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'r', ARGV[2], 'd', ARGV[3], 'nb', ARGV[4], 's', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]}`)

// MarkKey marks an API key live (fields e, v), unless ARGV[1] is 1 and
// a mark or revocation exists; 1 when it wrote, -2 when the key has
// expired (by Redis's clock). The mark lives until the key expires (e),
// or ARGV[5] ms at most. With ARGV[6] > 0 it refuses (-1)
// when the index (the subject's keys, revocations still held included)
// holds that many, unless the key's live mark is there already (this very
// call run again): 1.
var MarkKey = redis.NewScript(Now + fullFunc + `
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local exp = tonumber(ARGV[3])
if exp <= now then return -2 end
local max = tonumber(ARGV[6])
if max > 0 and redis.call('HEXISTS', KEYS[1], 'v') == 1 then return 1 end
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if full(KEYS[2], KEYS[1], ARGV[2], max, now) then return -1 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'e', exp, 'v', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], math.ceil(math.min(exp, now + tonumber(ARGV[5]) * 1000) / 1000))
` + indexed("ARGV[2]") + `return 1`)

// RevokeKey replaces a key's mark by a revocation (field x) kept
// for ARGV[3] microseconds (security.KeyRevocationTTL), or until the key
// expires (ARGV[2]) when that is sooner. It stays in the index until then,
// so that it counts toward the subject's cap.
var RevokeKey = redis.NewScript(Now + `
local exp = math.max(math.min(tonumber(ARGV[2]), now + tonumber(ARGV[3])), now + 1000)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'x', 1, 'e', exp)
redis.call('PEXPIREAT', KEYS[1], math.ceil(exp / 1000))
` + indexed("ARGV[1]") + `return 1`)

// Delete removes one record and its index entry; 1 when it was live (not
// expired, nor, for a session, unused past its idle bound).
var Delete = redis.NewScript(Now + idleFunc + `
local e = redis.call('HGET', KEYS[1], 'e')
redis.call('ZREM', KEYS[2], ARGV[1])
if not e then return 0 end
local gone = tonumber(e) <= now or idle(KEYS[1], now)
redis.call('DEL', KEYS[1])
if gone then return 0 end
return 1`)

// idleFunc reports whether a record (a session) with an idle bound
// (field i, microseconds; 0 or none: no bound) has gone unused (field l)
// that long.
const idleFunc = `local function idle(key, now)
  local r = redis.call('HMGET', key, 'l', 'i')
  local i = tonumber(r[2] or 0)
  return i > 0 and tonumber(r[1] or 0) + i <= now
end
`

// List returns every live record of an index as flat field lists.
var List = redis.NewScript(Now + idleFunc + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for _, id in ipairs(ids) do
  local h = redis.call('HGETALL', ARGV[1] .. id)
  if #h == 0 then
    redis.call('ZREM', KEYS[1], id)
  elseif not idle(ARGV[1] .. id, now) then
    table.insert(out, id)
    table.insert(out, h)
  end
end
return out`)

// Get returns a live record's fields.
var Get = redis.NewScript(Now + idleFunc + `
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= now or idle(KEYS[1], now) then return false end
return redis.call('HGETALL', KEYS[1])`)

// RevokeAll deletes every record listed in the given indexes,
// except, in the index of API keys (number ARGV[#KEYS + 1]), the
// revocations of single keys (field x), which stay listed.
var RevokeAll = redis.NewScript(`
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

// CredentialScripts are the credential store's scripts, for Load.
func CredentialScripts() []*redis.Script {
	return []*redis.Script{Create, Rotate, CheckCredential, PutAccount, MarkKey, RevokeKey, Delete, List, Get, RevokeAll}
}
