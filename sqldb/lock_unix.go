//go:build unix

package sqldb

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// errLocked: another process holds the lock.
var errLocked = errors.New("locked by another process")

// tryLockFile takes a flock on path, exclusive or shared, or fails with
// errLocked at once.
func tryLockFile(path string, shared bool) (release func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return func() error { return errors.Join(syscall.Flock(int(f.Fd()), syscall.LOCK_UN), f.Close()) }, nil
}

// lockSharerFile makes the sharer's file at path and locks it. Another
// process that lists the sharers may find it made but not yet locked: it
// holds it a moment to see whether it is held (waited for), and removes it
// as a dead holder's (it is then made again).
func lockSharerFile(path string) (func() error, error) {
	for deadline := time.Now().Add(5 * time.Second); ; {
		unlock, err := tryLockFile(path, false)
		if errors.Is(err, errLocked) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // a lister's probe: no one else takes this name
			continue
		} else if err != nil {
			return nil, err
		}
		if _, err := os.Stat(path); err == nil {
			return unlock, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			unlock()
			return nil, err
		}
		unlock()
	}
}

// heldFile reports whether another process holds a lock on the file at
// path; one that none holds is removed (its holder died), and one that is
// gone is not held.
func heldFile(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return false, nil
}

// lockFile takes an exclusive flock on path, waiting until ctx is done.
// The lock is the kernel's: a process that dies releases it.
func lockFile(ctx context.Context, path string) (release func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() error {
				return errors.Join(syscall.Flock(int(f.Fd()), syscall.LOCK_UN), f.Close())
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
