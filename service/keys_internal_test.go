package service

import (
	"sync"
	"testing"
)

// Instances started at once on one data directory all sign with the one
// development key: the one that makes it publishes it whole, so another
// never reads a file half written (it read an empty one, and failed to
// start, while the first was still writing).
func TestDevKeyMadeAtOnce(t *testing.T) {
	for range 50 {
		cfg := &Config{DataDir: t.TempDir()}
		const n = 4
		var wg sync.WaitGroup
		thumbs := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				k, err := signingKey(cfg)
				if err == nil {
					thumbs[i] = k.ID
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("instance %d: %v", i, errs[i])
			}
			if thumbs[i] != thumbs[0] {
				t.Fatalf("instance %d signs with key %s, instance 0 with %s", i, thumbs[i], thumbs[0])
			}
		}
	}
}
