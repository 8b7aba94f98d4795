//go:build specguard_testclock

package service

import "time"

// appClock, in the e2e build only (-tags specguard_testclock), shifts the
// app server's clock by SPECGUARD_TEST_CLOCK_OFFSET, so a test can run
// instances whose clocks are far apart.
func appClock(getenv func(string) string) func() time.Time {
	off, err := time.ParseDuration(getenv("SPECGUARD_TEST_CLOCK_OFFSET"))
	if err != nil {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(off) }
}
