// Package redisstore keeps specguard's security state (logins, sessions,
// API-key marks, accounts' state) in Redis or a Redis Cluster, so that
// every instance of a service decides with the same truth. Start with New;
// the result is a security.Store.
//
// On a *redis.Client or a *redis.ClusterClient, a write that takes
// something away (a revocation, logout everywhere, an account's new state,
// a refresh found reused) returns only once every replica of its master
// has it (WAIT), and ErrUnavailable while one lags: a failover to a
// replica without it would bring back what it took away. A Ring's shards,
// and clients of other types, are not waited for.
package redisstore
