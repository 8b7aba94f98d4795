package sqldb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/specguard/specguard/internal/text"
)

// ErrInUse: another process holds the database's instance lock.
var ErrInUse = errors.New("another instance serves this database")

// instanceLockID is the PostgreSQL advisory lock of LockInstance: one per
// database, whatever the schema (search_path), as every version took it.
// Keyed by schema, services in two schemas of one database would not lock
// each other out, but neither would an instance of a version before and
// one after it on one schema, in a rolling update.
const instanceLockID = 0x73706567 // "speg"

// InstanceLock is a lock only one process may hold on a database at a
// time (see LockInstance), or any number of processes together, none of
// which keeps its state in its own memory (ShareInstance). Held says
// whether this process holds it now.
type InstanceLock struct {
	held    atomic.Bool
	release func()
	stop    chan struct{}
	done    sync.WaitGroup
	once    sync.Once
}

// Held reports whether this process holds the lock: always, for a SQLite
// file (the kernel holds it while the process lives); for PostgreSQL while
// its connection lives and the lock was not taken by another since.
func (l *InstanceLock) Held() bool { return l.held.Load() }

// Release gives the lock up and stops keeping it.
func (l *InstanceLock) Release() {
	l.once.Do(func() {
		if l.stop != nil {
			close(l.stop)
			l.done.Wait()
		}
		l.release()
		l.held.Store(false)
	})
}

// LockInstance takes a lock that only one process may hold on this
// database at a time, until Release: a lock file beside a SQLite file, a
// session advisory lock on PostgreSQL. An instance whose fast state is its
// own memory takes it, because a second one on the same data would not see
// the first one's logins, revocations and account changes. It fails with
// ErrInUse at once when another process holds it.
//
// On PostgreSQL the lock lives on a connection of its own, outside the
// pool (a pool of one keeps its connection for requests), checked every
// keepalive. When that connection is lost, so is the lock: Held turns
// false and report is called with the error; LockInstance then takes it
// again as soon as it can (report(nil) says so), unless another process
// took it meanwhile (report(ErrInUse), and it keeps trying).
func (d *DB) LockInstance(ctx context.Context, keepalive time.Duration, report func(error)) (*InstanceLock, error) {
	return d.lockInstance(ctx, keepalive, report, false)
}

// ShareInstance takes the same lock as LockInstance, shared: any number of
// instances that keep their fast state in one place outside the process
// (Redis) hold it together, and one that keeps it in its own memory
// cannot take it beside them, nor they beside it (ErrInUse). It is kept
// as LockInstance's is, except that on PostgreSQL a lost connection
// leaves Held true for up to three keepalives while it is taken again
// (never once another process holds the lock exclusive).
func (d *DB) ShareInstance(ctx context.Context, keepalive time.Duration, report func(error)) (*InstanceLock, error) {
	return d.lockInstance(ctx, keepalive, report, true)
}

func (d *DB) lockInstance(ctx context.Context, keepalive time.Duration, report func(error), shared bool) (*InstanceLock, error) {
	l := &InstanceLock{}
	if d.src.Kind == SQLite {
		unlock, err := tryLockFile(d.lockPath(".instance-lock"), shared)
		if errors.Is(err, errLocked) {
			return nil, ErrInUse
		} else if err != nil {
			return nil, fmt.Errorf("locking %s: %v", d.src, err)
		}
		l.release = func() { unlock() }
		l.held.Store(true)
		return l, nil
	}
	conn, err := d.lockConn(ctx, shared)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex // guards conn
	l.release = func() {
		mu.Lock()
		defer mu.Unlock()
		if conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
			conn.Close(ctx)
		}
	}
	l.held.Store(true)
	l.stop = make(chan struct{})
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		lastInUse, misses := false, 0
		tick := time.NewTicker(keepalive)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			mu.Lock()
			err := d.keepLock(&conn, keepalive, shared)
			mu.Unlock()
			// Said once per change: lost, held by another, held again.
			// A shared lock held until its connection was lost still
			// counts as held for a few checks (sharedGrace): a database
			// that restarts does not stop a fleet that keeps its state in
			// Redis, and one that took the lock exclusive meanwhile is
			// seen as soon as the database answers (ErrInUse).
			inUse := errors.Is(err, ErrInUse)
			if err == nil {
				misses = 0
			} else {
				misses++
			}
			held := err == nil || shared && !inUse && l.held.Load() && misses <= sharedGrace
			if was := l.held.Swap(held); was != held || inUse != lastInUse {
				report(err)
			}
			lastInUse = inUse
		}
	}()
	return l, nil
}

// lockPath is the lock file beside the SQLite file, named by suffix: beside
// the file itself, where symbolic links lead, so that every path to one
// database finds one lock.
func (d *DB) lockPath(suffix string) string {
	if p, err := filepath.EvalSymlinks(d.src.DSN); err == nil {
		return p + suffix
	}
	return d.src.DSN + suffix
}

// sharedGrace is how many checks in a row a shared lock's lost
// connection may fail to come back before it no longer counts as held.
const sharedGrace = 3

// lockConn opens a connection of its own and takes the advisory lock on
// it, exclusive or shared, or fails with ErrInUse.
func (d *DB) lockConn(ctx context.Context, shared bool) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.src.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: locking %s: %s", ErrUnavailable, d.src, text.OneLine(err.Error()))
	}
	var got bool
	try := `SELECT pg_try_advisory_lock($1)`
	if shared {
		try = `SELECT pg_try_advisory_lock_shared($1)`
	}
	if err := conn.QueryRow(ctx, try, instanceLockID).Scan(&got); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("%w: locking %s: %s", ErrUnavailable, d.src, text.OneLine(err.Error()))
	}
	if !got {
		conn.Close(ctx)
		return nil, ErrInUse
	}
	return conn, nil
}

// keepLock checks that *conn still holds the lock, and takes it again on
// a new connection when it does not.
func (d *DB) keepLock(conn **pgx.Conn, timeout time.Duration, shared bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, time.Second))
	defer cancel()
	if *conn != nil {
		var held bool
		err := (*conn).QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
			AND classid = 0 AND objid = $1 AND objsubid = 1 AND granted)`, instanceLockID).Scan(&held)
		if err == nil && held {
			return nil
		}
		(*conn).Close(ctx)
		*conn = nil
	}
	c, err := d.lockConn(ctx, shared)
	if err != nil {
		return err
	}
	*conn = c
	return nil
}
