package redislua

// The rate-limit store's scripts (limits/redislimit), and the one that
// checks a credential and charges the tiers in one call.

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
)

// Allow is the limits package's GCRA (its gcra function) in Lua, for every bucket of one request at
// once: all are decided, and only when every one admits are they charged.
// Time is Redis TIME in microseconds, so app servers' clocks do not matter;
// every integer stays below 2^53, where Lua's doubles are exact.
// ARGV holds interval, burst, cost and ttl (ms) per key.
// It returns {allowed, then per key: allowed, remaining, retry_us, reset_us}.
var Allow = redis.NewScript(Now + allowFunc + "return allow(0, 0, #KEYS)")

// allowFunc decides the n buckets KEYS[ko+1..], whose arguments start at
// ARGV[ao+1].
const allowFunc = `local function allow(ko, ao, n)
local out = {1}
local tats = {}
for i = 1, n do
  local key = KEYS[ko + i]
  local base = ao + (i - 1) * 4
  local interval = tonumber(ARGV[base + 1])
  local burst = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local tat = tonumber(redis.call('GET', key) or 0)
  if tat < now then tat = now end
  local tolerance = interval * burst
  local new = tat + interval * cost
  local allowAt = new - tolerance
  if now < allowAt then
    out[1] = 0
    table.insert(out, 0)
    table.insert(out, math.floor((tolerance - (tat - now)) / interval))
    table.insert(out, allowAt - now)
    table.insert(out, tat - now)
    tats[i] = false
  else
    table.insert(out, 1)
    table.insert(out, math.floor((tolerance - (new - now)) / interval))
    table.insert(out, 0)
    table.insert(out, new - now)
    tats[i] = new
  end
end
if out[1] == 1 then
  for i = 1, n do
    local ttl = tonumber(ARGV[ao + (i - 1) * 4 + 4])
    local left = math.ceil((tats[i] - now) / 1000)
    if left > ttl then ttl = left end
    redis.call('SET', KEYS[ko + i], string.format('%d', tats[i]), 'PX', ttl)
  end
end
return out
end
`

// CheckAndAllow is the credential check (checkFunc) and then Allow, in one
// script: KEYS and ARGV start with the check's (CheckKeys and CheckArgs),
// then ARGV holds n, the number of the tiers' buckets; the tiers' keys and
// arguments follow, and after them those of a fallback: the buckets that
// count the request as anonymous (a negative n, -n, says the fallback is
// the tiers themselves, the caller being anonymous already). When the
// check holds, the tiers are decided and the answer is Allow's. When it
// finds the credential gone (Dead, or Before) and there is a fallback, the
// fallback's buckets are decided instead, and the answer is {-code}
// followed by Allow's for them: the refused credential's request is
// counted as anonymous in the same call. On any other code the script
// returns {-code} and charges nothing.
var CheckAndAllow = redis.NewScript(Now + checkFunc + allowFunc + fmt.Sprintf(`local code = check(KEYS, ARGV, now)
local ko, ao = %d, %d
local n = tonumber(ARGV[ao])
local same = n < 0
if same then n = -n end
if code == 0 then return allow(ko, ao, n) end
local fko, fao, m = ko + n, ao + 4 * n, #KEYS - ko - n
if same then fko, fao, m = ko, ao, n end
if (code ~= %d and code ~= %d) or m == 0 then return {-code} end
local out = allow(fko, fao, m)
table.insert(out, 1, -code)
return out
`, CheckKeys, CheckArgs+1, Dead, Before))

// Refund gives back what Allow charged one bucket: its TAT
// moves back by interval * cost (ARGV), the key goes when that is past.
var Refund = redis.NewScript(Now + `local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat == 0 then return 0 end
local back = tat - tonumber(ARGV[1]) * tonumber(ARGV[2])
if back <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%d', back), 'KEEPTTL')
end
return 1`)

// LimitScripts are the rate-limit store's scripts, for Load.
func LimitScripts() []*redis.Script { return []*redis.Script{Allow, CheckAndAllow, Refund} }

// Decode reads Allow's answer (or CheckAndAllow's, once the code in front
// of a fallback's answer is taken off) into results, one per bucket, and
// says whether every bucket admitted.
func Decode(raw []int64, results []limits.Result) (bool, error) {
	if len(raw) != 1+4*len(results) {
		return false, fmt.Errorf("%w: script returned %d values for %d buckets", limits.ErrStore, len(raw), len(results))
	}
	for i := range results {
		v := raw[1+4*i:]
		results[i] = limits.Result{
			Allowed:    v[0] == 1,
			Remaining:  v[1],
			RetryAfter: time.Duration(v[2]) * time.Microsecond,
			ResetAfter: time.Duration(v[3]) * time.Microsecond,
		}
	}
	return raw[0] == 1, nil
}

// CheckError is the error of the credential check's code: nil when it
// holds, security.ErrStale, security.ErrUnmarked, else
// security.ErrNotFound (the credential is gone for good; for Before,
// wrapping onetrip.ErrNotBefore too).
func CheckError(code int64) error {
	switch code {
	case Holds:
		return nil
	case Stale:
		return security.ErrStale
	case Unmarked:
		return security.ErrUnmarked
	case Before:
		return errNotBefore
	}
	return security.ErrNotFound
}

var errNotBefore = fmt.Errorf("%w (%w)", security.ErrNotFound, onetrip.ErrNotBefore)
