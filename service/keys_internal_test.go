package service

import (
	"errors"
	"os"
	"path/filepath"
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

// On a file system without hard links the key is created exclusively and
// written in place, as before: made once, then read.
func TestDevKeyWithoutHardLinks(t *testing.T) {
	link = func(string, string) error { return errors.New("operation not permitted") }
	t.Cleanup(func() { link = os.Link })
	cfg := &Config{DataDir: t.TempDir()}
	first, err := signingKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := signingKey(cfg)
	if err != nil || again.ID != first.ID {
		t.Fatalf("the key read again: %v, %v; want %s", again, err, first.ID)
	}
	entries, err := os.ReadDir(filepath.Dir(devKeyPath(cfg.DataDir)))
	if err != nil || len(entries) != 1 {
		t.Errorf("the data directory holds %v (%v), want the key alone", entries, err)
	}
	if fi, err := os.Stat(devKeyPath(cfg.DataDir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file: %v, %v; want mode 0600", fi, err)
	}
}
