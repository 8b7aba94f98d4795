//go:build !specguard_testclock

package service

import "time"

// appClock is the clock of everything that reads the app server's time
// (token iat/exp, the memory stores). Only the e2e build can shift it:
// here it is nil, time.Now, on which the guard reads the clock once per
// request for every store and cache rather than once for each.
func appClock(func(string) string) func() time.Time { return nil }
