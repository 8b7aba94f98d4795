// Package redislua is specguard's one place for Lua on Redis: every script
// of the credential store (security/redisstore) and of the rate-limit
// store (limits/redislimit), the one that checks a credential and charges
// the tiers in one call (CheckAndAllow), and what their answers mean. The
// stores build the keys and arguments; the scripts' layout of records and
// their codes are known here alone.
package redislua

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Now is the prelude of every script: the local variable now is Redis TIME
// in microseconds, so the app servers' clocks never matter.
const Now = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
`

// Load loads scripts into Redis (into every master of a Cluster, or shard
// of a Ring, which runs a script on whichever node holds its keys), so that
// the first calls after a start do not each pay a round trip to load them.
func Load(ctx context.Context, rdb redis.UniversalClient, scripts ...*redis.Script) error {
	load := func(ctx context.Context, c redis.Scripter) error {
		for _, sc := range scripts {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return load(ctx, node) })
	case *redis.Ring:
		return c.ForEachShard(ctx, func(ctx context.Context, shard *redis.Client) error { return load(ctx, shard) })
	}
	return load(ctx, rdb)
}
