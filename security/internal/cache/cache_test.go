package cache

import "testing"

// TestTailKeysComparedWhole: keys that share their hashed tail are told
// apart by the whole key; one replaces the other rather than answering for
// it.
func TestTailKeysComparedWhole(t *testing.T) {
	c := NewTail[int](1600, 4)
	c.Put("aaaa.SIGN", 1)
	if v, ok := c.Get("aaaa.SIGN"); !ok || v != 1 {
		t.Fatalf("Get(aaaa.SIGN) = %d, %v; want 1, true", v, ok)
	}
	if v, ok := c.Get("bbbb.SIGN"); ok {
		t.Fatalf("Get(bbbb.SIGN) = %d, true: another key with the same tail answered", v)
	}
	c.Del("bbbb.SIGN")
	if _, ok := c.Get("aaaa.SIGN"); !ok {
		t.Fatal("Del(bbbb.SIGN) removed aaaa.SIGN")
	}
	c.Put("bbbb.SIGN", 2)
	if v, ok := c.Get("bbbb.SIGN"); !ok || v != 2 {
		t.Fatalf("Get(bbbb.SIGN) = %d, %v; want 2, true", v, ok)
	}
	if v, ok := c.Get("aaaa.SIGN"); ok {
		t.Fatalf("Get(aaaa.SIGN) = %d after bbbb.SIGN replaced it", v)
	}
	// A key shorter than the tail is hashed whole.
	c.Put("ab", 3)
	if v, ok := c.Get("ab"); !ok || v != 3 {
		t.Fatalf("Get(ab) = %d, %v", v, ok)
	}
	if _, ok := c.Get("abc"); ok {
		t.Fatal("Get(abc) answered for ab")
	}
}
