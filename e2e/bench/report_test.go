package main

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// The added-cost target is a ratio of round-by-round costs: each round's
// (d) over the same round's (b), each over its own bare stack. A round in
// which (b) measured no slower than bare leaves it unmeasured.
func TestAddedRatioIsPerRound(t *testing.T) {
	at := func(rps ...float64) []result {
		out := make([]result, len(rps))
		for i, v := range rps {
			out[i] = result{rps: v}
		}
		return out
	}
	bare := &stack{runs: map[string][]result{"l": at(100_000, 50_000, 100_000)}}
	b := &stack{bare: bare, runs: map[string][]result{"l": at(50_000, 25_000, 80_000)}} // adds 10, 20, 2.5 µs
	d := &stack{bare: bare, runs: map[string][]result{"l": at(20_000, 12_500, 40_000)}} // adds 40, 60, 15 µs
	med, lo, hi, ok := addedRatio(b, d, "l")
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if !ok || !near(med, 4) || !near(lo, 3) || !near(hi, 6) {
		t.Errorf("addedRatio = %v %v %v %v, want 4 (3 to 6)", med, lo, hi, ok)
	}
	b.runs["l"][1].rps = 60_000 // faster than its bare stack in round 2
	if _, _, _, ok := addedRatio(b, d, "l"); ok {
		t.Error("a round where (b) added nothing gave a ratio")
	}
}

// No stack always follows the same one.
func TestRotated(t *testing.T) {
	xs := []string{"a", "b", "c"}
	for k, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		if got := rotated(xs, k); !slices.Equal(got, want) {
			t.Errorf("rotated(%v, %d) = %v, want %v", xs, k, got, want)
		}
	}
	if !slices.Equal(xs, []string{"a", "b", "c"}) {
		t.Errorf("rotated changed its argument: %v", xs)
	}
}

// A SPECGUARD_* or OTEL_* setting exported in the shell does not reach the
// servers (a SPECGUARD_REDIS_URL would change what a stack is), but the
// ones the harness passes on do.
func TestChildEnvDropsExportedSettings(t *testing.T) {
	t.Setenv("SPECGUARD_REDIS_URL", "redis://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("SPECGUARD_STORE_TIMEOUT", "1s")
	env := strings.Join(childEnv(), "\n")
	if strings.Contains(env, "SPECGUARD_REDIS_URL") || strings.Contains(env, "OTEL_") || !strings.Contains(env, "SPECGUARD_STORE_TIMEOUT=1s") {
		t.Errorf("childEnv:\n%s", env)
	}
	if got := passedOnEnv(); got != " SPECGUARD_STORE_TIMEOUT=1s" {
		t.Errorf("passedOnEnv = %q", got)
	}
}
