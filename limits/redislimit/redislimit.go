// Package redislimit is the Redis store of package limits: buckets shared by
// every instance, on one Redis or a Redis Cluster, one script call per
// request. Start with New, and give the store to limits.New.
package redislimit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/internal/redislua"
	"github.com/specguard/specguard/limits"
)

// Store keeps buckets in Redis, shared by every instance: one script call
// decides every tier of a request. Keys carry a {hash tag} per
// bucket; on a Redis Cluster (or a Ring: on any client but one Redis's),
// tiers are decided by one call each, in one pipeline, and when one refuses, what
// the others charged is refunded: all or nothing once the refund lands.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	cluster bool     // keys are routed one by one: a Cluster, a Ring
	batch   *batcher // nil on a Cluster
	argv    argCache
}

var _ limits.Store = (*Store)(nil)

func init() {
	// The limiter's private path (internal/onetrip): a credential's check
	// in the same script as the tiers.
	onetrip.PrecheckStore = func(store limits.Store) func(context.Context, onetrip.Precheck, []limits.Request, []limits.Result, []limits.Request, []limits.Result) (bool, bool, error, error) {
		if s, ok := store.(*Store); ok {
			return s.allowPrechecked
		}
		return nil
	}
}

// New returns a store on rdb; keys start with prefix ("sg:rl:" when empty).
// Give it the client of the credential store (security/redisstore) too:
// a guarded request's credential check then rides in this store's script,
// one round trip for both. With another client, or on a Cluster (a Ring:
// any client but a *redis.Client), the check is sent alongside the script,
// at the same time, and is a call of its own.
func New(rdb redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = "sg:rl:"
	}
	// Any client but one Redis (a Cluster, a Ring of shards) routes each
	// key on its own: a script of several keys would count a bucket on
	// whichever node its first key picked.
	_, one := rdb.(*redis.Client)
	cluster := !one
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

func (s *Store) args(r *limits.Request) []any { return s.argv.of(r) }

// argCache holds the script arguments of each kind of request (a tier's
// interval, burst, cost and TTL), boxed once: boxing them for every call
// cost three allocations a tier. A document has few tiers; past maxArgs
// kinds they are boxed per call.
type argCache struct {
	m  atomic.Pointer[map[[4]int64][]any] // copied on write
	mu sync.Mutex
}

const maxArgs = 1024

func (c *argCache) of(r *limits.Request) []any {
	k := [4]int64{r.Interval, r.Burst, r.Cost, max(r.TTL.Milliseconds(), 1)}
	m := c.m.Load()
	if m != nil {
		if a, ok := (*m)[k]; ok {
			return a
		}
	}
	a := []any{k[0], k[1], k[2], k[3]}
	if m == nil || len(*m) < maxArgs {
		c.mu.Lock()
		defer c.mu.Unlock()
		next := map[[4]int64][]any{k: a}
		if cur := c.m.Load(); cur != nil {
			for ck, ca := range *cur {
				next[ck] = ca
			}
		}
		c.m.Store(&next)
	}
	return a
}

// Allow implements Store.
func (s *Store) Allow(ctx context.Context, reqs []limits.Request, results []limits.Result) (bool, error) {
	allowed, _, err := s.allow(ctx, reqs, results)
	return allowed, err
}

// allow is Allow, and says whether the tiers it decided keep their charges
// beside its error (see allowEach).
func (s *Store) allow(ctx context.Context, reqs []limits.Request, results []limits.Result) (allowed, kept bool, err error) {
	if s.cluster && len(reqs) > 1 {
		return s.allowEach(ctx, reqs, results)
	}
	keys := make([]string, len(reqs))
	argv := make([]any, 0, 4*len(reqs))
	for i := range reqs {
		keys[i] = s.key(&reqs[i])
		argv = append(argv, s.args(&reqs[i])...)
	}
	raw, err := s.eval(ctx, redislua.Allow, keys, argv)
	if err != nil {
		return false, false, fmt.Errorf("%w: %v", limits.ErrStore, err)
	}
	allowed, err = redislua.Decode(raw, results)
	return allowed, false, err
}

// allowPrechecked runs the precheck and, only when it holds, decides every
// tier, in one script. When the precheck finds the credential gone for good
// and fb is not empty, the script decides fb's buckets instead (the request
// counted as anonymous), into fbResults: fellBack says so, and allowed is
// theirs. A precheck that cannot ride in that script (on another Redis, or
// on a Cluster) is checked alongside the tiers instead, without a
// fallback: either way one round trip of wall time instead of two.
func (s *Store) allowPrechecked(ctx context.Context, pre onetrip.Precheck, reqs []limits.Request, results []limits.Result, fb []limits.Request, fbResults []limits.Result) (allowed, fellBack bool, preErr, err error) {
	client, keys0, args0 := pre.Script()
	if client == nil || len(reqs) == 0 && (s.cluster || client != any(s.rdb)) {
		// Checked in process, or with no tier of the caller's to decide
		// beside it and no script to ride in: the check alone, then the
		// tiers, if any.
		if preErr := pre.Check(ctx, time.Time{}); preErr != nil || len(reqs) == 0 {
			return len(reqs) == 0, false, preErr, nil
		}
		allowed, err := s.Allow(ctx, reqs, results)
		return allowed, false, nil, held(err)
	}
	if s.cluster || client != any(s.rdb) {
		allowed, preErr, err = s.allowAlongside(ctx, pre, reqs, results)
		return allowed, false, preErr, err
	}
	if len(keys0) != redislua.CheckKeys || len(args0) != redislua.CheckArgs {
		return false, false, fmt.Errorf("%w: a credential check of %d keys and %d arguments, want %d and %d", onetrip.ErrUndecided,
			len(keys0), len(args0), redislua.CheckKeys, redislua.CheckArgs), nil
	}
	n, sets := len(reqs), [][]limits.Request{reqs, fb}
	if len(fb) > 0 && n > 0 && &fb[0] == &reqs[0] {
		// The caller is anonymous already: the tiers are their own
		// fallback, sent once.
		n, sets = -n, sets[:1]
	}
	keys := make([]string, 0, len(keys0)+len(reqs)+len(fb))
	keys = append(keys, keys0...)
	argv := make([]any, 0, len(args0)+1+4*(len(reqs)+len(fb)))
	argv = append(argv, args0...)
	argv = append(argv, n)
	for k, set := range sets {
		for i := range set {
			key := ""
			if k == 1 {
				// A tier counting everyone alike (global, by address) has
				// the same key in both: built once.
				for j := range reqs {
					if reqs[j].Bucket == set[i].Bucket && reqs[j].Who == set[i].Who {
						key = keys[len(keys0)+j]
						break
					}
				}
			}
			if key == "" {
				key = s.key(&set[i])
			}
			keys = append(keys, key)
			argv = append(argv, s.args(&set[i])...)
		}
	}
	raw, err := s.eval(ctx, redislua.CheckAndAllow, keys, argv)
	if err != nil {
		return false, false, nil, fmt.Errorf("%w: %v", limits.ErrStore, err)
	}
	if len(raw) > 0 && raw[0] < 0 {
		preErr = pre.Failed(-raw[0])
		if len(raw) > 1 {
			if allowed, err := redislua.Decode(raw[1:], fbResults); err == nil {
				return allowed, true, preErr, nil
			}
			// An answer that cannot be read leaves the fallback to the
			// caller: the credential's refusal stands.
		}
		return false, false, preErr, nil
	}
	allowed, err = redislua.Decode(raw, results)
	return allowed, false, nil, err
}

// allowAlongside checks pre and decides the tiers at the same time: one
// round trip of wall time, where one after the other would take two. When
// pre fails, what the tiers charged is refunded before it returns, so a
// refused credential costs its owner's buckets nothing once the refund
// lands (a concurrent request may see the charge meanwhile; on one Redis
// CheckAndAllow charges nothing at all).
func (s *Store) allowAlongside(ctx context.Context, pre onetrip.Precheck, reqs []limits.Request, results []limits.Result) (allowed bool, preErr, err error) {
	checked := make(chan error, 1)
	go func() { checked <- pre.Check(ctx, time.Time{}) }()
	allowed, kept, err := s.allow(ctx, reqs, results)
	if preErr = <-checked; preErr != nil {
		if err == nil && allowed || kept {
			// A refusal was refunded by Allow already (on a Cluster) or
			// charged nothing (one script); so was a tier the Cluster
			// could not decide unless the request was to go on (the
			// charges of the tiers it decided then stand). A check that
			// failed at the deadline has spent it: the refund gets a
			// second of its own.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			s.refund(rctx, reqs, results, err == nil)
			cancel()
		}
		return false, preErr, nil
	}
	return allowed, nil, held(err)
}

// held marks err, the tiers' store error, as coming after a precheck that
// held: the tiers' on-store-error decides.
func held(err error) error {
	if err == nil {
		return nil
	}
	return &onetrip.HeldError{Err: err}
}

// refund gives back the charges of a request whose precheck failed: every
// tier when allowed (one script charges all or none), and on a Cluster,
// where each tier is decided alone, each tier that admitted. It is best
// effort: an error leaves the charge, as a refused request would.
func (s *Store) refund(ctx context.Context, reqs []limits.Request, results []limits.Result, allowed bool) {
	pipe := s.rdb.Pipeline()
	for i := range reqs {
		if allowed || s.cluster && results[i].Allowed {
			redislua.Refund.Eval(ctx, pipe, []string{s.key(&reqs[i])}, reqs[i].Interval, reqs[i].Cost)
		}
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx)
	}
}

// Preload loads the rate-limit scripts into Redis, with the one that checks
// a credential first, so that the first requests after a start do not each
// pay a round trip to load them (a burst of them would otherwise queue
// behind the loads and time out). It refuses a Redis Cluster node opened
// as one server (a *redis.Client): it would refuse every script of keys in
// several slots (CROSSSLOT), so every request with two tiers, or a
// credential and a tier, would fail.
func (s *Store) Preload(ctx context.Context) error {
	if !s.cluster {
		info, err := s.rdb.Info(ctx, "cluster").Result()
		var reply redis.Error
		switch {
		case err == nil && strings.Contains(info, "cluster_enabled:1"):
			return errors.New("the server is a Redis Cluster node (cluster_enabled:1), opened as one server: open it as a Cluster (redis.NewClusterClient; a redis+cluster:// URL), even with one shard")
		case err != nil && !errors.As(err, &reply):
			return fmt.Errorf("%w: %v", limits.ErrStore, err)
		}
		// A server that refuses INFO (a proxy, a renamed command) is
		// taken for what it was opened as.
	}
	if err := redislua.Load(ctx, s.rdb, redislua.LimitScripts()...); err != nil {
		return fmt.Errorf("%w: loading the scripts: %v", limits.ErrStore, err)
	}
	return nil
}

// allowEach decides each tier with its own script call (its keys may be
// on different nodes), all at once: one round trip of wall time. They are
// not pipelined: when one node fails, go-redis's Cluster pipeline puts its
// error on every command, the answered ones too. A tier that refused
// refuses the request, even when another tier's node did not answer: one
// Redis would have refused it, and on-store-error decides only what no
// store answered. What the admitting tiers charged is then given back, so
// the Cluster answers as one Redis does (a concurrent request may see the
// charge until the refund lands). Otherwise a tier that could not be
// decided is the store's error, marked Undecided. When every such tier
// allows on a store error, the request goes on and what the others
// charged stays: a tier whose node answers keeps limiting through another
// node's outage. When one does not, the request is refused and their
// charges are given back, as one Redis that does not answer charges
// nothing.
func (s *Store) allowEach(ctx context.Context, reqs []limits.Request, results []limits.Result) (allowed, kept bool, err error) {
	raws := make([][]int64, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() {
			raws[i], errs[i] = redislua.Allow.Run(ctx, s.rdb, []string{s.key(&reqs[i])}, s.args(&reqs[i])...).Int64Slice()
		})
	}
	wg.Wait()
	allowed, goesOn := true, true // goesOn: every undecided tier allows on a store error
	var failed error
	for i := range reqs {
		err := errs[i]
		if err == nil {
			var ok bool
			if ok, err = redislua.Decode(raws[i], results[i:i+1]); err == nil {
				allowed = allowed && ok
				continue
			}
		} else {
			err = fmt.Errorf("%w: %v", limits.ErrStore, err)
		}
		errs[i] = err
		results[i] = limits.Result{Undecided: true}
		failed = cmp.Or(failed, err)
		goesOn = goesOn && reqs[i].AllowOnStoreError
	}
	if !allowed || failed != nil && !goesOn {
		// Refused: what the answering tiers charged is given back, as
		// one Redis charges nothing then (a request refused, or one the
		// store could not decide, must not drain the buckets it reached).
		// The failing node's call may have spent the request's deadline.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		s.refund(rctx, reqs, results, false) // an undecided tier's result admits nothing: not refunded
		cancel()
	}
	if !allowed {
		for i := range reqs {
			if errs[i] != nil {
				// Its bucket's state is unknown: reported as admitting with
				// none left once the limiter gives back its charge, full
				// again within its window at most.
				charge := time.Duration(reqs[i].Interval*reqs[i].Cost) * time.Microsecond
				results[i] = limits.Result{Allowed: true, Remaining: -reqs[i].Cost, ResetAfter: reqs[i].TTL + charge}
			}
		}
		return false, false, nil
	}
	if failed != nil {
		return false, goesOn, failed
	}
	return true, false, nil
}
