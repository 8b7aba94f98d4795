package credentials

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/specguard/specguard/security"
)

// Password checks queued with no deadline: a burst larger than the slots
// could work through held every request (its connection, its memory) for
// as long as its client waited. A check waits passwordWait at most, then
// is answered as unavailable (503, retry).
func TestPasswordChecksWaitABoundedTime(t *testing.T) {
	pw, err := newPasswords(Argon2{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	pw.wait = 50 * time.Millisecond
	for range cap(pw.slots) {
		pw.slots <- struct{}{} // every slot busy
	}
	_, _, err = pw.match(context.Background(), "", "password") // a context without deadline
	if !errors.Is(err, security.ErrUnavailable) {
		t.Fatalf("a check with every slot busy: %v, want ErrUnavailable", err)
	}
	if _, err := pw.hash(context.Background(), "password"); !errors.Is(err, security.ErrUnavailable) {
		t.Fatalf("a hash with every slot busy: %v, want ErrUnavailable", err)
	}
	<-pw.slots
	if _, _, err := pw.match(context.Background(), "", "password"); err != nil {
		t.Errorf("a check once a slot is free: %v", err)
	}
}
