package redislimit_test

import (
	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
)

// Every instance of a service gives its limiter a store on the same Redis
// (or Redis Cluster): one script call per request decides all its tiers,
// and the instances count as one. The suite every store passes is package
// limits' (TestAllOrNothingAcrossTiers and its kin run it on this store
// too, on one Redis and on a Cluster).
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	limiter := limits.New(redislimit.New(rdb, "myapp:rl:"))
	_ = limiter // guard.WithLimiter(limiter)
}
