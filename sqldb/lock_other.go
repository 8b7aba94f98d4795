//go:build !unix

package sqldb

import (
	"context"
	"errors"
)

var errLocked = errors.New("locked by another process")

// tryLockFile is a no-op where flock does not exist.
func tryLockFile(string, bool) (func() error, error) { return func() error { return nil }, nil }

// lockFile is a no-op where flock does not exist: processes sharing one
// SQLite file there must not start at once on a database that needs migrating.
func lockFile(context.Context, string) (func() error, error) { return func() error { return nil }, nil }

// heldFile says no file is held where flock does not exist.
func heldFile(string) (bool, error) { return false, nil }

// lockSharerFile is a no-op where flock does not exist.
func lockSharerFile(string) (func() error, error) { return func() error { return nil }, nil }
