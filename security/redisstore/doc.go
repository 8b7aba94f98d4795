// Package redisstore keeps specguard's security state (logins, sessions,
// API-key marks, accounts' state) in Redis or a Redis Cluster, so that
// every instance of a service decides with the same truth. Start with New;
// the result is a security.Store.
package redisstore
