package security

import (
	"context"
	"testing"
	"time"
)

// One account logs in and out again, over and over, holding one login at
// most: the store kept an expiry entry for every login made until its
// refresh lifetime (30 days) would have passed, growing with the logins
// made, not those held (helper-192). Browser sessions alike. The queue
// stays within twice what is held, and what is held still expires.
func TestEndedRecordsLeaveNoExpiryEntries(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemoryStore(func() time.Time { return now })
	ctx := context.Background()
	const logins = 10000
	var kept *Family
	for i := range logins {
		f := &Family{ID: NewID(), Subject: "mallory", RefreshJTI: "r", AccessJTI: "a", Expires: now.Add(720 * time.Hour)}
		if err := m.CreateFamily(ctx, f, 0); err != nil {
			t.Fatal(err)
		}
		s := &Session{ID: NewID(), Subject: "mallory", Expires: now.Add(12 * time.Hour), Idle: time.Hour}
		if err := m.CreateSession(ctx, s, 0); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			kept = f // held to its end
		} else if err := m.RevokeFamily(ctx, "mallory", f.ID); err != nil {
			t.Fatal(err)
		}
		if err := m.DeleteSession(ctx, "mallory", s.ID); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	m.mu.Lock()
	held := len(m.families) + len(m.sessions) + len(m.marks) + len(m.accounts)
	queued := len(m.expiries)
	m.mu.Unlock()
	if bound := 2*held + sweepBatch + 1; queued > bound {
		t.Fatalf("after %d logins and browser logins, each ended but one: %d records held, %d expiry entries queued (want <= %d)", logins, held, queued, bound)
	}
	// The one held still goes at its time.
	now = kept.Expires
	if err := m.CreateSession(ctx, &Session{ID: NewID(), Subject: "other", Expires: now.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	_, still := m.families[kept.ID]
	m.mu.Unlock()
	if still {
		t.Error("the login held to its end was not dropped at its expiry")
	}
}
