package service_test

import (
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/service"
)

// A SPECGUARD_REDIS_URL go-redis refuses is named without its password:
// the start-up error is logged.
func TestRedisURLErrorsHideThePassword(t *testing.T) {
	for raw, want := range map[string]string{
		"redis+cluster://app:S3cretPW@h1:abc,h2:7001": `SPECGUARD_REDIS_URL: invalid port ":abc" after host`,
		"redis://app:S3cretPW@h1:6379/x":              `SPECGUARD_REDIS_URL: redis: invalid database number: "x"`,
		// A password with an unencoded / parses as the host :, its path
		// quoted by go-redis.
		"redis://:/S3cretPW@cache:6379/0":             "SPECGUARD_REDIS_URL: an @ follows the host: percent-encode a password's / ? # and @ (%2F %3F %23 %40)",
		"redis+cluster://u:/S3cretPW@h1:7000,h2:7000": "SPECGUARD_REDIS_URL: an @ follows the host: percent-encode a password's / ? # and @ (%2F %3F %23 %40)",
	} {
		_, err := service.NewRedisClient(raw, time.Second)
		if err == nil || strings.Contains(err.Error(), "S3cretPW") || err.Error() != want {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
}
