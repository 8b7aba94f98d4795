package cred

import (
	"encoding/base64"
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

func BenchmarkDecodeSecret(b *testing.B) {
	enc := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for b.Loop() {
		if _, ok := DecodeSecret(enc); !ok {
			b.Fatal("refused")
		}
	}
}
