// Package redislimit is the Redis store of package limits: buckets shared by
// every instance, on one Redis or a Redis Cluster, one script call per
// request. Start with New, and give the store to limits.New.
package redislimit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/internal/redislua"
	"github.com/specguard/specguard/limits"
)

// allowScript is the limits package's GCRA (its gcra function) in Lua, for every bucket of one request at
// once: all are decided, and only when every one admits are they charged.
// Time is Redis TIME in microseconds, so app servers' clocks do not matter;
// every integer stays below 2^53, where Lua's doubles are exact.
// ARGV holds interval, burst, cost and ttl (ms) per key.
// It returns {allowed, then per key: allowed, remaining, retry_us, reset_us}.
var allowScript = redis.NewScript(redislua.Now + "local ko, ao = 0, 0\n" + allowBody)

// allowBody decides the buckets KEYS[ko+1..], whose arguments start at
// ARGV[ao+1].
const allowBody = `local out = {1}
local tats = {}
local n = #KEYS - ko
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
return out`

// gatedScript is allowScript preceded by a security gate: its function,
// defining gate(gk, ga, now), is called with the first nk keys and na
// arguments; when it returns a code other than 0, the script returns
// {-code} and charges nothing.
func gatedScript(fn string, nk, na int) *redis.Script {
	var b strings.Builder
	b.WriteString(redislua.Now)
	b.WriteString(fn)
	b.WriteString("local code = gate({")
	for i := 1; i <= nk; i++ {
		fmt.Fprintf(&b, "KEYS[%d],", i)
	}
	b.WriteString("}, {")
	for i := 1; i <= na; i++ {
		fmt.Fprintf(&b, "ARGV[%d],", i)
	}
	fmt.Fprintf(&b, "}, now)\nif code ~= 0 then return {-code} end\nlocal ko, ao = %d, %d\n", nk, na)
	b.WriteString(allowBody)
	return redis.NewScript(b.String())
}

// gateShape keys the gated scripts.
type gateShape struct {
	fn     string
	nk, na int
}

// Store keeps buckets in Redis, shared by every instance: one script call
// decides every tier of a request. Keys carry a {hash tag} per
// bucket; on a Redis Cluster, tiers whose keys live in different slots are
// decided by one call each, in one pipeline, and when one refuses, what
// the others charged is refunded: all or nothing once the refund lands.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	cluster bool
	gated   sync.Map // gateShape -> *redis.Script
	batch   *batcher // nil on a Cluster
}

var _ limits.Store = (*Store)(nil)

func init() {
	// The limiter's private path (internal/onetrip): a credential's check
	// in the same script as the tiers.
	onetrip.PrecheckStore = func(store limits.Store) func(context.Context, onetrip.Precheck, []limits.Request, []limits.Result) (bool, error, error) {
		if s, ok := store.(*Store); ok {
			return s.allowPrechecked
		}
		return nil
	}
}

// New returns a store on rdb; keys start with prefix ("sg:rl:" when empty).
// Give it the client of the credential store (security/redisstore) too:
// a guarded request's credential check then rides in this store's script,
// one round trip for both. With another client, or on a Cluster, the check
// is sent alongside the script, at the same time, and is a call of its own.
func New(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = "sg:rl:"
	}
	_, cluster := rdb.(*redis.ClusterClient)
	s := &Store{rdb: rdb, prefix: prefix, cluster: cluster}
	if !cluster {
		s.batch = &batcher{rdb: rdb, max: 4, limit: 64, timeout: time.Second}
	}
	return s
}

// eval runs a script: with the calls of concurrent requests in one pipeline
// on one Redis, on its own on a Cluster (whose client splits pipelines by
// node anyway).
func (s *Store) eval(ctx context.Context, script *redis.Script, keys []string, argv []any) ([]int64, error) {
	if s.batch != nil {
		return s.batch.run(ctx, script, keys, argv)
	}
	return script.Run(ctx, s.rdb, keys, argv...).Int64Slice()
}

func (s *Store) key(r *limits.Request) string { return s.prefix + "{" + r.Key() + "}" }

func args(r *limits.Request) []any {
	return []any{r.Interval, r.Burst, r.Cost, max(r.TTL.Milliseconds(), 1)}
}

// Allow implements Store.
func (s *Store) Allow(ctx context.Context, reqs []limits.Request, results []limits.Result) (bool, error) {
	if s.cluster && len(reqs) > 1 {
		allowed, err := s.allowEach(ctx, reqs, results)
		if err == nil && !allowed {
			// A tier refused: what the others charged is given back, so the
			// Cluster answers as one Redis does (a concurrent request may
			// see the charge until the refund lands).
			s.refund(ctx, reqs, results, false)
		}
		return allowed, err
	}
	keys := make([]string, len(reqs))
	argv := make([]any, 0, 4*len(reqs))
	for i := range reqs {
		keys[i] = s.key(&reqs[i])
		argv = append(argv, args(&reqs[i])...)
	}
	raw, err := s.eval(ctx, allowScript, keys, argv)
	if err != nil {
		return false, fmt.Errorf("%w: %v", limits.ErrStore, err)
	}
	return decode(raw, results)
}

// allowPrechecked runs the precheck and, only when it holds, decides every
// tier, in one script. A precheck that cannot ride in that script (on
// another Redis, or on a Cluster) is checked alongside the tiers instead:
// either way one round trip of wall time instead of two.
func (s *Store) allowPrechecked(ctx context.Context, pre onetrip.Precheck, reqs []limits.Request, results []limits.Result) (allowed bool, preErr, err error) {
	client, fn, keys0, args0 := pre.Script()
	if client == nil {
		// Checked in process: no round trip to save, nothing to refund.
		if preErr := pre.Check(ctx, time.Time{}); preErr != nil {
			return false, preErr, nil
		}
		allowed, err := s.Allow(ctx, reqs, results)
		return allowed, nil, err
	}
	if s.cluster || client != any(s.rdb) {
		return s.allowAlongside(ctx, pre, reqs, results)
	}
	shape := gateShape{fn: fn, nk: len(keys0), na: len(args0)}
	sc, ok := s.gated.Load(shape)
	if !ok {
		sc, _ = s.gated.LoadOrStore(shape, gatedScript(shape.fn, shape.nk, shape.na))
	}
	keys := make([]string, 0, len(keys0)+len(reqs))
	keys = append(keys, keys0...)
	argv := make([]any, 0, len(args0)+4*len(reqs))
	argv = append(argv, args0...)
	for i := range reqs {
		keys = append(keys, s.key(&reqs[i]))
		argv = append(argv, args(&reqs[i])...)
	}
	raw, err := s.eval(ctx, sc.(*redis.Script), keys, argv)
	if err != nil {
		return false, nil, fmt.Errorf("%w: %v", limits.ErrStore, err)
	}
	if len(raw) == 1 && raw[0] < 0 {
		return false, pre.Failed(-raw[0]), nil
	}
	allowed, err = decode(raw, results)
	return allowed, nil, err
}

// allowAlongside checks pre and decides the tiers at the same time: one
// round trip of wall time, where one after the other would take two. When
// pre fails, what the tiers charged is refunded before it returns, so a
// refused credential costs its owner's buckets nothing once the refund
// lands (a concurrent request may see the charge meanwhile; on one Redis
// the gated script charges nothing at all).
func (s *Store) allowAlongside(ctx context.Context, pre onetrip.Precheck, reqs []limits.Request, results []limits.Result) (allowed bool, preErr, err error) {
	checked := make(chan error, 1)
	go func() { checked <- pre.Check(ctx, time.Time{}) }()
	allowed, err = s.Allow(ctx, reqs, results)
	if preErr = <-checked; preErr != nil {
		if err == nil {
			s.refund(ctx, reqs, results, allowed)
		}
		return false, preErr, nil
	}
	return allowed, nil, err
}

// refundScript gives back what allowScript charged one bucket: its TAT
// moves back by interval * cost (ARGV), the key goes when that is past.
var refundScript = redis.NewScript(redislua.Now + `local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat == 0 then return 0 end
local back = tat - tonumber(ARGV[1]) * tonumber(ARGV[2])
if back <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%d', back), 'KEEPTTL')
end
return 1`)

// refund gives back the charges of a request whose precheck failed: every
// tier when allowed (one script charges all or none), and on a Cluster,
// where each tier is decided alone, each tier that admitted. It is best
// effort: an error leaves the charge, as a refused request would.
func (s *Store) refund(ctx context.Context, reqs []limits.Request, results []limits.Result, allowed bool) {
	pipe := s.rdb.Pipeline()
	for i := range reqs {
		if allowed || s.cluster && results[i].Allowed {
			refundScript.Eval(ctx, pipe, []string{s.key(&reqs[i])}, reqs[i].Interval, reqs[i].Cost)
		}
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx)
	}
}

// Preload loads the rate-limit scripts into Redis, with the one that runs
// each credential store's check first, so that the first requests after a
// start do not each pay a round trip to load them (a burst of them would
// otherwise queue behind the loads and time out).
func (s *Store) Preload(ctx context.Context) error {
	scripts := []*redis.Script{allowScript, refundScript}
	for _, g := range onetrip.Gates() {
		shape := gateShape{fn: g.Fn, nk: g.NK, na: g.NA}
		sc, _ := s.gated.LoadOrStore(shape, gatedScript(shape.fn, shape.nk, shape.na))
		scripts = append(scripts, sc.(*redis.Script))
	}
	if err := redislua.Load(ctx, s.rdb, scripts...); err != nil {
		return fmt.Errorf("%w: loading the scripts: %v", limits.ErrStore, err)
	}
	return nil
}

// allowEach decides each tier with its own script call, in one pipeline.
func (s *Store) allowEach(ctx context.Context, reqs []limits.Request, results []limits.Result) (bool, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(reqs))
	for i := range reqs {
		cmds[i] = allowScript.EvalSha(ctx, pipe, []string{s.key(&reqs[i])}, args(&reqs[i])...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
		return false, fmt.Errorf("%w: %v", limits.ErrStore, err)
	}
	allowed := true
	for i := range reqs {
		raw, err := cmds[i].Int64Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			raw, err = allowScript.Run(ctx, s.rdb, []string{s.key(&reqs[i])}, args(&reqs[i])...).Int64Slice()
		}
		if err != nil {
			return false, fmt.Errorf("%w: %v", limits.ErrStore, err)
		}
		ok, err := decode(raw, results[i:i+1])
		if err != nil {
			return false, err
		}
		allowed = allowed && ok
	}
	return allowed, nil
}

func decode(raw []int64, results []limits.Result) (bool, error) {
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
