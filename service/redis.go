package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/redact"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/security/redisstore"
)

// NewRedisClient opens SPECGUARD_REDIS_URL: redis://[user:pass@]host:port[/db]
// or rediss:// for one server; redis+cluster://host:port,host:port (or
// rediss+cluster://) for a Redis Cluster, listing one or more seed nodes.
// Every call is bounded by its context, and a call is retried at most once.
func NewRedisClient(raw string, timeout time.Duration) (redis.UniversalClient, error) {
	open, err := redisClient(raw, timeout)
	if err != nil {
		return nil, err
	}
	return open(), nil
}

// redisClient reads SPECGUARD_REDIS_URL and returns what opens its
// client: a URL it refuses is refused before anything is opened.
func redisClient(raw string, timeout time.Duration) (func() redis.UniversalClient, error) {
	raw, seeds, err := clusterSeeds(raw)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's reason quotes the part it refuses, which may be a
		// password's (an unencoded / makes "invalid port \":pass\"").
		if strings.Contains(raw, "@") {
			return nil, fmt.Errorf("SPECGUARD_REDIS_URL: not a URL: percent-encode a password's %% / ? # and @ (%%25 %%2F %%3F %%23 %%40)")
		}
		return nil, fmt.Errorf("SPECGUARD_REDIS_URL: not a URL")
	}
	if redact.Misread(raw) {
		return nil, fmt.Errorf("SPECGUARD_REDIS_URL: an @ follows the host: percent-encode a password's / ? # and @ (%%2F %%3F %%23 %%40)")
	}
	scheme, cluster := strings.CutSuffix(u.Scheme, "+cluster")
	if scheme != "redis" && scheme != "rediss" {
		return nil, fmt.Errorf("SPECGUARD_REDIS_URL: scheme %q: want redis, rediss, redis+cluster or rediss+cluster", u.Scheme)
	}
	if !cluster {
		opt, err := redis.ParseURL(raw)
		if err != nil {
			return nil, redisURLError(err)
		}
		opt.ContextTimeoutEnabled, opt.MaxRetries, opt.DialTimeout = true, 1, max(timeout, time.Second)
		opt.MinIdleConns = warmConns
		return func() redis.UniversalClient { return redis.NewClient(opt) }, nil
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		// A Cluster has database 0 only: the number would be dropped.
		return nil, fmt.Errorf("SPECGUARD_REDIS_URL: a Redis Cluster has database 0 only, not %q; leave the path out", p)
	}
	seed := scheme + "://" + u.User.String()
	if u.User != nil {
		seed += "@"
	}
	seed += u.Host + "?"
	q := u.Query()
	for _, h := range seeds {
		q.Add("addr", h)
	}
	opt, err := redis.ParseClusterURL(seed + q.Encode())
	if err != nil {
		return nil, redisURLError(err)
	}
	opt.ContextTimeoutEnabled, opt.MaxRetries, opt.DialTimeout = true, 1, max(timeout, time.Second)
	opt.MinIdleConns = warmConns
	return func() redis.UniversalClient { return redis.NewClusterClient(opt) }, nil
}

// clusterSeeds takes from a Cluster's URL the seed nodes after its first,
// which url.Parse would read as one host with the first (a list of
// bracketed IPv6 addresses is no host to it), and returns the URL with
// the first alone. Each seed is host:port.
func clusterSeeds(raw string) (string, []string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !strings.HasSuffix(strings.ToLower(scheme), "+cluster") {
		return raw, nil, nil
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	at := strings.LastIndex(authority, "@") + 1
	hosts := strings.Split(authority[at:], ",")
	for i, h := range hosts[1:] {
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			// A seed is no secret, but a password misread as one may be.
			return "", nil, fmt.Errorf("SPECGUARD_REDIS_URL: seed node %d of the list is not host:port", i+2)
		}
	}
	return scheme + "://" + authority[:at] + hosts[0] + rest[end:], hosts[1:], nil
}

// redisURLError is go-redis's refusal of the URL without the URL, which
// may hold a password (a *url.Error quotes it whole).
func redisURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	return fmt.Errorf("SPECGUARD_REDIS_URL: %v", err)
}

// redisLog sends go-redis's own messages (dial failures while Redis is
// down) to the structured log at debug level: failures that matter are
// logged, rate-limited, where a decision falls back.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// warmConns is how many connections (per master, on a Cluster) are opened
// before serving, and kept idle.
const warmConns = 8

// warm opens n connections to every master at once.
func warm(ctx context.Context, rdb redis.UniversalClient, n int) error {
	ping := func(ctx context.Context, c *redis.Client) error {
		errs := make(chan error, n)
		for range n {
			go func() { errs <- c.Ping(ctx).Err() }()
		}
		var first error
		for range n {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, ping)
	case *redis.Client:
		return ping(ctx, c)
	}
	return rdb.Ping(ctx).Err()
}

func openRedis(ctx context.Context, cfg *Config, d *Deps) error {
	redis.SetLogger(redisLog{d.Log})
	rdb, err := NewRedisClient(cfg.RedisURL, cfg.StoreTimeout)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return fmt.Errorf("SPECGUARD_REDIS_URL: cannot reach Redis: %v", err)
	}
	store := redisstore.New(rdb, "sg:", cfg.StoreTimeout)
	ls := redislimit.New(rdb, "sg:rl:")
	// Ready before serving: scripts loaded and connections open, so that a
	// burst at start waits neither for one nor for the other (either would
	// eat the store timeout, and answer 503 with Redis healthy).
	if err := store.Preload(pctx); err != nil {
		rdb.Close()
		return fmt.Errorf("SPECGUARD_REDIS_URL: %v", err)
	}
	if err := ls.Preload(pctx); err != nil {
		rdb.Close()
		return fmt.Errorf("SPECGUARD_REDIS_URL: %v", err)
	}
	if err := warm(pctx, rdb, warmConns); err != nil {
		rdb.Close()
		return fmt.Errorf("SPECGUARD_REDIS_URL: cannot reach Redis: %v", err)
	}
	if risk := snapshotRisk(pctx, rdb); risk != "" {
		d.Log.Warn("Redis may restart from an older copy of its data, bringing back the logins and browser sessions ended since (a logout, a refresh token's reuse): run it with save \"\" (a restart then ends every login) or appendonly yes with appendfsync always",
			"redis", risk)
	}
	d.Store = store
	d.Limits = ls
	d.redis = rdb
	d.storeName = "redis"
	if _, ok := rdb.(*redis.ClusterClient); ok {
		d.storeName = "redis-cluster"
	}
	d.Ready = func(ctx context.Context) map[string]error { return map[string]error{"redis": store.Ping(ctx)} }
	d.closers = append(d.closers, func() { rdb.Close() })
	return nil
}

// snapshotRisk says, from Redis's own settings, why a restart of it may
// load data older than what it acknowledged: snapshots (save) or an
// append-only file not synced at every write. A single login's end (a
// logout, a session deleted, a family revoked for reuse) is kept in Redis
// alone, by its record's absence, and would come back. Empty when the
// settings are safe, or cannot be read (a managed Redis refusing CONFIG:
// the README says what to ask for).
func snapshotRisk(ctx context.Context, rdb redis.UniversalClient) string {
	var mu sync.Mutex // ForEachMaster asks the masters at once
	var risk string
	check := func(ctx context.Context, c *redis.Client) error {
		conf := map[string]string{}
		for _, name := range []string{"save", "appendonly", "appendfsync"} {
			v, err := c.ConfigGet(ctx, name).Result()
			if err != nil {
				return nil
			}
			conf[name] = v[name]
		}
		mu.Lock()
		defer mu.Unlock()
		aof := conf["appendonly"] == "yes"
		switch {
		case aof && conf["appendfsync"] != "always":
			risk = "appendonly yes, appendfsync " + conf["appendfsync"]
		case !aof && strings.TrimSpace(conf["save"]) != "":
			risk = "save " + conf["save"]
		}
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, check)
	case *redis.Client:
		_ = check(ctx, c)
	}
	return risk
}
