// Package cache is the bounded, sharded map of verified credentials that
// package security and its credential kinds share.
package cache

import (
	"hash/maphash"
	"sync"
)

// Bounded maps strings to values, in 16 shards of at most per entries
// each; a full shard drops an arbitrary entry to make room. It holds only
// what may be forgotten at any time: verified tokens, immutable parts of
// sessions and keys, account state that every use re-asserts in the store.
type Bounded[V any] struct {
	seed   maphash.Seed
	shards [16]shard[V]
	per    int
	tail   int // hash only the last tail bytes of a key; 0: all of it
}

type shard[V any] struct {
	mu sync.RWMutex
	m  map[uint64]entry[V] // by the key's hash, computed once per lookup
}

type entry[V any] struct {
	key string
	v   V
}

// New returns a cache of about size entries.
func New[V any](size int) *Bounded[V] {
	c := &Bounded[V]{seed: maphash.MakeSeed(), per: max(1, size/16)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]entry[V])
	}
	return c
}

// NewTail returns a cache of about size entries that hashes only the last
// n bytes of each key, for keys that end in n bytes no one chooses (a
// verified token's signature): hashing a whole token took a tenth of a
// cached bearer request's authentication. Keys are still compared whole.
func NewTail[V any](size, n int) *Bounded[V] {
	c := New[V](size)
	c.tail = n
	return c
}

// hash is the key's hash, of its last c.tail bytes when tail is set.
func (c *Bounded[V]) hash(key string) uint64 {
	if c.tail > 0 && len(key) > c.tail {
		key = key[len(key)-c.tail:]
	}
	return maphash.String(c.seed, key)
}

// Get returns the value of key; a nil cache holds nothing.
func (c *Bounded[V]) Get(key string) (v V, ok bool) {
	if c == nil {
		return v, false
	}
	h := c.hash(key)
	s := &c.shards[h%16]
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	if !ok || e.key != key {
		return v, false
	}
	return e.v, true
}

// Put remembers v for key, dropping an arbitrary entry of a full shard.
func (c *Bounded[V]) Put(key string, v V) {
	if c == nil {
		return
	}
	h := c.hash(key)
	s := &c.shards[h%16]
	s.mu.Lock()
	if _, replacing := s.m[h]; !replacing && len(s.m) >= c.per {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[h] = entry[V]{key: key, v: v}
	s.mu.Unlock()
}

// Del forgets key.
func (c *Bounded[V]) Del(key string) {
	if c == nil {
		return
	}
	h := c.hash(key)
	s := &c.shards[h%16]
	s.mu.Lock()
	if s.m[h].key == key {
		delete(s.m, h)
	}
	s.mu.Unlock()
}
