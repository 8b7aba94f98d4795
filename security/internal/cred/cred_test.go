package cred

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeSecret(t *testing.T) {
	var want [32]byte
	for i := range want {
		want[i] = byte(i*7 + 3)
	}
	canon := base64.RawURLEncoding.EncodeToString(want[:])
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, canon[42])
	if last&3 != 0 {
		t.Fatalf("test secret's last character %q has unused bits set", canon[42])
	}
	got, ok := DecodeSecret(canon)
	if !ok || got != want {
		t.Fatalf("DecodeSecret(canonical) = %x, %v; want %x, true", got, ok, want)
	}
	// Refused: every other spelling, those a lenient decoder reads as the
	// same bytes included; only the canonical form is the credential.
	refused := map[string]string{
		"too short":               canon[:42],
		"too long":                canon + "A",
		"padded":                  canon + "=",
		"a '+' (standard base64)": canon[:41] + "+" + canon[42:],
		"newline inside":          canon[:20] + "\n" + canon[21:],
		"CR at the end":           canon[:42] + "\r",
		"empty":                   "",
	}
	for bits := 1; bits < 4; bits++ {
		refused["unused bits "+string(rune('0'+bits))] = canon[:42] + string(alphabet[last|bits])
	}
	for name, enc := range refused {
		if got, ok := DecodeSecret(enc); ok {
			t.Errorf("%s: DecodeSecret(%q) = %x, true; want false", name, enc, got)
		}
	}
}

// KeyID names the key SplitKey reads from every value SplitKey accepts,
// and refuses every value whose prefix, id or secret length is wrong.
func TestKeyID(t *testing.T) {
	secret := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for _, c := range []struct {
		v      string
		id     string
		ok     bool
		splits bool // SplitKey accepts it too
	}{
		{"sg_k1." + secret, "k1", true, true},
		{"sg_" + strings.Repeat("a", 64) + "." + secret, strings.Repeat("a", 64), true, true},
		{"sg_k1." + secret[:42] + "+", "k1", true, false}, // not base64url: for SplitKey to refuse
		{"sg_k1." + secret[:42], "", false, false},
		{"sg_k1." + secret + "A", "", false, false},
		{"sg_k1" + secret, "", false, false},
		{"sg_." + secret, "", false, false},
		{"sg_k/1." + secret, "", false, false},
		{"sg_" + strings.Repeat("a", 65) + "." + secret, "", false, false},
		{"xx_k1." + secret, "", false, false},
		{"", "", false, false},
	} {
		id, ok := KeyID(c.v)
		if ok != c.ok || id != c.id {
			t.Errorf("KeyID(%q) = %q, %v; want %q, %v", c.v, id, ok, c.id, c.ok)
		}
		sid, _, sok := SplitKey(c.v)
		if sok != c.splits || (sok && sid != id) {
			t.Errorf("SplitKey(%q) = %q, %v; want ok %v and KeyID's id", c.v, sid, sok, c.splits)
		}
	}
}

func BenchmarkDecodeSecret(b *testing.B) {
	enc := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for b.Loop() {
		if _, ok := DecodeSecret(enc); !ok {
			b.Fatal("refused")
		}
	}
}

// A bearer token after anything but one space is malformed, never no
// credential; another scheme's name that starts with Bearer is another
// scheme.
func TestBearerSeparator(t *testing.T) {
	for _, h := range []string{"Bearer\ttok", "Bearer\u00a0tok", "Bearer\u3000tok", "Bearer,tok", "Bearer:tok"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", h)
		if tok, err := Bearer(r); tok != "" || !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %q, %v; want malformed", h, tok, err)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearerish tok")
	if tok, err := Bearer(r); tok != "" || err != nil {
		t.Errorf("another scheme: %q, %v; want none", tok, err)
	}
}
