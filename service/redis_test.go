package service_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/service"
)

// A SPECGUARD_REDIS_URL go-redis refuses is named without its password:
// the start-up error is logged.
func TestRedisURLErrorsHideThePassword(t *testing.T) {
	for raw, want := range map[string]string{
		"redis+cluster://app:S3cretPW@h1:abc,h2:7001": "SPECGUARD_REDIS_URL: not a URL: percent-encode a password's % / ? # and @ (%25 %2F %3F %23 %40)",
		// url.Parse's reason quoted the password's part (helper-180).
		"redis://app:S3cretPW/x@cache:6379/0":            "SPECGUARD_REDIS_URL: not a URL: percent-encode a password's % / ? # and @ (%25 %2F %3F %23 %40)",
		"redis://:S3cretPW#x@cache:6379":                 "SPECGUARD_REDIS_URL: not a URL: percent-encode a password's % / ? # and @ (%25 %2F %3F %23 %40)",
		"redis+cluster://app:S3cretPW?x@h1:7000,h2:7000": "SPECGUARD_REDIS_URL: not a URL: percent-encode a password's % / ? # and @ (%25 %2F %3F %23 %40)",
		"redis://cache:63x79":                            "SPECGUARD_REDIS_URL: not a URL",
		"redis://app:S3cretPW@h1:6379/x":                 `SPECGUARD_REDIS_URL: redis: invalid database number: "x"`,
		// A password with an unencoded / parses as the host :, its path
		// quoted by go-redis.
		"redis://:/S3cretPW@cache:6379/0":             "SPECGUARD_REDIS_URL: an @ follows the host: percent-encode a password's / ? # and @ (%2F %3F %23 %40)",
		"redis+cluster://u:/S3cretPW@h1:7000,h2:7000": "SPECGUARD_REDIS_URL: an @ follows the host: percent-encode a password's / ? # and @ (%2F %3F %23 %40)",
		"redis://app:S3cretPW%zz@h1:6379":             "SPECGUARD_REDIS_URL: not a URL: percent-encode a password's % / ? # and @ (%25 %2F %3F %23 %40)",
	} {
		_, err := service.NewRedisClient(raw, time.Second)
		if err == nil || strings.Contains(err.Error(), "S3cretPW") || err.Error() != want {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}

// A Cluster's seed nodes are a list, IPv6 addresses among them
// (helper-176: url.Parse refused "[::1]:7000,[::1]:7001" as a host).
func TestClusterSeedsOfIPv6(t *testing.T) {
	for _, raw := range []string{
		"redis+cluster://[::1]:7000",
		"redis+cluster://[::1]:7000,[::1]:7001",
		"redis+cluster://10.0.0.1:7000,[fd00::2]:7001",
		"rediss+cluster://app:pw@[fd00::1]:7000,[fd00::2]:7001/0?dial_timeout=2s",
		"REDIS+CLUSTER://h1:7000,h2:7000", // a scheme in capitals (helper-180)
	} {
		rdb, err := service.NewRedisClient(raw, time.Second)
		if err != nil {
			t.Errorf("%s: %v, want it opened", raw, err)
			continue
		}
		c, ok := rdb.(*redis.ClusterClient)
		if !ok {
			t.Errorf("%s: a %T", raw, rdb)
		} else if want := strings.Count(raw, ",") + 1; len(c.Options().Addrs) != want {
			t.Errorf("%s: seeds %q, want %d", raw, c.Options().Addrs, want)
		}
		rdb.Close()
	}
	for raw, want := range map[string]string{
		"redis+cluster://h1:7000,":            "SPECGUARD_REDIS_URL: seed node 2 of the list is not host:port",
		"redis+cluster://h1:7000,h2":          "SPECGUARD_REDIS_URL: seed node 2 of the list is not host:port",
		"redis+cluster://h1:7000,h2:1,[::1]":  "SPECGUARD_REDIS_URL: seed node 3 of the list is not host:port",
		"redis+cluster://a:S3cret@h1:7000,h2": "SPECGUARD_REDIS_URL: seed node 2 of the list is not host:port",
	} {
		if _, err := service.NewRedisClient(raw, time.Second); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}
