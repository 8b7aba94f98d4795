package hold

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/specguard/specguard/security"
)

// A principal is kept per scheme and account state, and never for an
// account state without a stamp: such a store cannot tell one state from
// the next, so a role change must rebuild the principal.
func TestMemoKeysByAccountStamp(t *testing.T) {
	var m Memo
	p := &security.Principal{Subject: "alice", Scheme: "cookieAuth", Role: "writer"}
	v1 := &security.Account{Version: 1, Role: "writer", Stamp: "s1"}
	m.Put(p, v1)
	if got := m.Get("cookieAuth", v1); got != p {
		t.Fatalf("same scheme and state: %v, want the principal kept", got)
	}
	if got := m.Get("cookieAuth", &security.Account{Version: 2, Role: "reader", Stamp: "s2"}); got != nil {
		t.Errorf("another account state: %v, want none", got)
	}
	if got := m.Get("otherScheme", v1); got != nil {
		t.Errorf("another scheme: %v, want none", got)
	}
	var none Memo
	q := &security.Principal{Subject: "alice", Scheme: "keyAuth"}
	none.Put(q, nil)
	if got := none.Get("keyAuth", nil); got != q {
		t.Errorf("no account state: %v, want the principal kept", got)
	}
	var unstamped Memo
	r := &security.Principal{Subject: "alice", Scheme: "keyAuth"}
	unstamped.Put(r, &security.Account{Version: 1, Role: "writer"})
	if got := unstamped.Get("keyAuth", &security.Account{Version: 2, Role: "reader"}); got != nil {
		t.Errorf("an account state without a stamp: %v, want none kept", got)
	}
}

// A store's failure that already says it is one (redisstore's) is not
// said twice: "security store unavailable: security store unavailable:
// redis: ..." in the 503's log line.
func TestUnavailableSaidOnce(t *testing.T) {
	failed := fmt.Errorf("%w: redis: i/o timeout", security.ErrUnavailable)
	for _, err := range []error{checkError(failed), Unavailable(failed), checkError(errors.New("boom"))} {
		if !errors.Is(err, security.ErrUnavailable) || strings.Count(err.Error(), security.ErrUnavailable.Error()) != 1 {
			t.Errorf("%q: want ErrUnavailable, said once", err)
		}
	}
}
