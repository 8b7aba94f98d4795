package service

import "time"

// SetLockKeepalive checks the PostgreSQL instance lock every d until
// restore is called.
func SetLockKeepalive(d time.Duration) (restore func()) {
	old := lockKeepalive
	lockKeepalive = d
	return func() { lockKeepalive = old }
}
