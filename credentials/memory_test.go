package credentials_test

import (
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/credentialstest"
	"github.com/specguard/specguard/security"
)

func TestMemoryStores(t *testing.T) {
	credentialstest.RunAccounts(t, func(*testing.T) credentials.Accounts { return credentials.NewMemoryAccounts(nil) })
	credentialstest.RunKeys(t, func(*testing.T) (security.KeyRecords, string) { return security.NewMemoryKeyRecords(nil), "owner" })
}

// EmailKey is stable: a key is its own key, so an address looked up by
// the key it was stored under finds it. The strings are ones whose case
// mapping or compatibility form moves them between normalization forms.
func TestEmailKeyIsStable(t *testing.T) {
	for _, s := range []string{
		"J\u030coe@example.com", "\u01f0oe@example.com", "\u1d2c@example.com", "\u3380@example.com",
		"\u0130stanbul@example.com", "\u01c5@example.com", "\u1e9e@example.com", "\ufb00@example.com",
		"\uff2a\u030cax@example.com", "A\u030a@example.com", "\u212b@example.com", "\u03a3\u0342@example.com",
		"\u03c2@example.com", "\u1c82@example.com", "\u0131@example.com", "\u0345@example.com",
	} {
		if k := credentials.EmailKey(s); credentials.EmailKey(k) != k {
			t.Errorf("EmailKey(%+q) = %+q, whose key is %+q", s, k, credentials.EmailKey(k))
		}
	}
	// And every code point, first, last, and alone: NFKC makes a spacing
	// accent (´) a space and a combining one, which was kept first.
	for r := rune(0x20); r <= 0x2ffff; r++ {
		for _, s := range []string{string(r) + "a@x", "a@x" + string(r), string(r)} {
			if k := credentials.EmailKey(s); credentials.EmailKey(k) != k {
				t.Fatalf("EmailKey(%+q) = %+q, whose key is %+q", s, k, credentials.EmailKey(k))
			}
		}
	}
}
