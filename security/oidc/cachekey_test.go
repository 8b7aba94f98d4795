package oidc

import (
	"strings"
	"testing"
)

// A token past 4 KiB is cached under its SHA-256: with tokens of up to
// 12 KiB, a cache of 100,000 would otherwise hold 1.2 GB of keys.
func TestCacheKeyIsBounded(t *testing.T) {
	small, big := strings.Repeat("a", 4<<10), strings.Repeat("a", 12<<10)
	if got := cacheKey(small); got != small {
		t.Errorf("a 4 KiB token is cached under %d bytes, want itself", len(got))
	}
	got := cacheKey(big)
	if len(got) != 33 || got[0] != '#' {
		t.Errorf("a 12 KiB token is cached under %d bytes, want '#' and its SHA-256", len(got))
	}
	if other := cacheKey(big[:len(big)-1] + "b"); other == got {
		t.Error("two tokens share a key")
	}
}
