package redislua_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/internal/redislua"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
)

// The credential check answers the same alone (CheckCredential) and before
// the tiers (CheckAndAllow), for every kind and state; CheckAndAllow
// charges the tiers only when it holds, a fallback's buckets (the request
// counted as anonymous) only when the credential is gone for good, and
// CheckError says what each code means.
func TestCheckAloneAndBeforeTheTiers(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := redislua.Load(ctx, rdb, append(redislua.CredentialScripts(), redislua.LimitScripts()...)...); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	later, earlier := now.Add(time.Hour).UnixMicro(), now.Add(-time.Hour).UnixMicro()
	for i, c := range []struct {
		name    string
		record  map[string]any // the credential's hash; nil: none
		account map[string]any // the account's hash; nil: none
		args    []any          // kind, jti, account stamp
		code    int64
		err     error
	}{
		{"access token live", map[string]any{"a": "j1", "e": later, "v": 1}, nil, []any{"a", "j1", ""}, redislua.Holds, nil},
		{"access token replaced", map[string]any{"a": "j2", "e": later, "v": 1}, nil, []any{"a", "j1", ""}, redislua.Dead, security.ErrNotFound},
		{"access token's family gone", nil, nil, []any{"a", "j1", ""}, redislua.Dead, security.ErrNotFound},
		{"access token's family expired", map[string]any{"a": "j1", "e": earlier}, nil, []any{"a", "j1", ""}, redislua.Dead, security.ErrNotFound},
		{"session live", map[string]any{"h": "x", "e": later}, nil, []any{"s", "", ""}, redislua.Holds, nil},
		{"session ended", nil, nil, []any{"s", "", ""}, redislua.Dead, security.ErrNotFound},
		{"key marked", map[string]any{"e": later, "v": 1}, nil, []any{"k", "", ""}, redislua.Holds, nil},
		{"key revoked", map[string]any{"x": 1, "e": later}, nil, []any{"k", "", ""}, redislua.Dead, security.ErrNotFound},
		{"key unmarked", nil, nil, []any{"k", "", ""}, redislua.Unmarked, security.ErrUnmarked},
		{"account as stamped", map[string]any{"e": later, "v": 2}, map[string]any{"s": "st", "nb": 2}, []any{"k", "", "st"}, redislua.Holds, nil},
		{"account changed", map[string]any{"e": later, "v": 2}, map[string]any{"s": "new", "nb": 2}, []any{"k", "", "st"}, redislua.Stale, security.ErrStale},
		{"credential older than the account's not-before", map[string]any{"e": later, "v": 1}, map[string]any{"s": "st", "nb": 2}, []any{"k", "", "st"}, redislua.Before, onetrip.ErrNotBefore},
	} {
		t.Run(c.name, func(t *testing.T) {
			keys := []string{fmt.Sprintf("%scred:%d", srv.Prefix, i), fmt.Sprintf("%sacct:%d", srv.Prefix, i)}
			for k, fields := range map[string]map[string]any{keys[0]: c.record, keys[1]: c.account} {
				if fields != nil {
					if err := rdb.HSet(ctx, k, fields).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(keys) != redislua.CheckKeys || len(c.args) != redislua.CheckArgs {
				t.Fatalf("the check takes %d keys and %d arguments", redislua.CheckKeys, redislua.CheckArgs)
			}
			alone, err := redislua.CheckCredential.Run(ctx, rdb, keys, c.args...).Int64()
			if err != nil || alone != c.code {
				t.Fatalf("CheckCredential = %d, %v; want %d", alone, err, c.code)
			}
			if err := redislua.CheckError(alone); !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
				t.Errorf("CheckError(%d) = %v, want %v", alone, err, c.err)
			} else if alone == redislua.Before && !errors.Is(err, security.ErrNotFound) {
				t.Errorf("CheckError(%d) = %v, want it to wrap %v too", alone, err, security.ErrNotFound)
			}
			buckets := []string{fmt.Sprintf("%sbucket:%d:a", srv.Prefix, i), fmt.Sprintf("%sbucket:%d:b", srv.Prefix, i)}
			fallback := fmt.Sprintf("%sbucket:%d:anon", srv.Prefix, i)
			// Two tiers, kept a minute: 10 a minute, and 5 a minute at cost
			// 2; a fallback of one, 100 a minute.
			argv := append(append([]any{}, c.args...), 2,
				int64(6*time.Second/time.Microsecond), 10, 1, 60_000,
				int64(12*time.Second/time.Microsecond), 5, 2, 60_000)
			withFallback := append(argv[:len(argv):len(argv)], int64(600*time.Millisecond/time.Microsecond), 100, 1, 60_000)
			// The tiers as their own fallback: -n.
			same := append([]any{}, argv...)
			same[redislua.CheckArgs] = -2
			for _, fb := range []string{"none", "own", "same"} {
				k, a := append(keys, buckets...), argv
				switch fb {
				case "own":
					k, a = append(k, fallback), withFallback
				case "same":
					a = same
				}
				raw, err := redislua.CheckAndAllow.Run(ctx, rdb, k, a...).Int64Slice()
				if err != nil {
					t.Fatal(err)
				}
				charged, fellBack := rdb.Exists(ctx, buckets...).Val(), rdb.Exists(ctx, fallback).Val()
				switch {
				case (c.code == redislua.Dead || c.code == redislua.Before) && fb == "same":
					results := make([]limits.Result, 2)
					allowed, err := redislua.Decode(raw[1:], results)
					if raw[0] != -c.code || err != nil || !allowed || charged != 2 || fellBack != 0 || results[0].Remaining != 9 || results[1].Remaining != 3 {
						t.Fatalf("CheckAndAllow with the tiers as fallback = %v: allowed %v, %+v, %v (tiers charged: %d, fallback: %d); want [%d] and the tiers charged",
							raw, allowed, results, err, charged, fellBack, -c.code)
					}
					rdb.Del(ctx, buckets...)
				case (c.code == redislua.Dead || c.code == redislua.Before) && fb == "own":
					results := make([]limits.Result, 1)
					allowed, err := redislua.Decode(raw[1:], results)
					if raw[0] != -c.code || err != nil || !allowed || charged != 0 || fellBack != 1 || results[0].Remaining != 99 {
						t.Fatalf("CheckAndAllow with a fallback = %v: allowed %v, %+v, %v (tiers charged: %d, fallback: %d); want [%d] and the fallback alone charged",
							raw, allowed, results, err, charged, fellBack, -c.code)
					}
					rdb.Del(ctx, fallback)
				case c.code != redislua.Holds:
					if len(raw) != 1 || raw[0] != -c.code || charged != 0 || fellBack != 0 {
						t.Fatalf("CheckAndAllow (fallback %s) = %v (tiers charged: %d, fallback: %d), want [%d] and nothing charged", fb, raw, charged, fellBack, -c.code)
					}
				default:
					results := make([]limits.Result, 2)
					allowed, err := redislua.Decode(raw, results)
					if err != nil || !allowed || charged != 2 || fellBack != 0 || results[0].Remaining != 9 || results[1].Remaining != 3 {
						t.Fatalf("CheckAndAllow (fallback %s) = %v: allowed %v, %+v, %v (tiers charged: %d, fallback: %d); want admitted with 9 and 3 left",
							fb, raw, allowed, results, err, charged, fellBack)
					}
					rdb.Del(ctx, buckets...)
				}
			}
		})
	}
	// Decode refuses an answer of the wrong length.
	if _, err := redislua.Decode([]int64{1, 1}, make([]limits.Result, 1)); !errors.Is(err, limits.ErrStore) {
		t.Errorf("Decode of a short answer: %v, want ErrStore", err)
	}
}
