//go:build !specguard_testclock

package service

import "time"

// appClock is the clock of everything that reads the app server's time
// (token iat/exp, the memory stores). Only the e2e build can shift it.
func appClock(func(string) string) func() time.Time { return time.Now }
