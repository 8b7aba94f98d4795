package sqldb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
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
	taken   atomic.Bool // exclusive: another process took it since
	release func()
	stop    chan struct{}
	done    sync.WaitGroup
	once    sync.Once
	// id names this holder among those sharing the lock ("" when
	// exclusive); others lists the other sharers' ids.
	id     string
	others func(context.Context) ([]string, error)
}

// ID names this process among the instances that share the lock (see
// ShareInstance); it is empty for a lock held exclusive. It is random, of
// 31 bits: two of n processes holding the lock at once share one with a
// chance of about n²/2³².
func (l *InstanceLock) ID() string { return l.id }

// Others returns the IDs of the other processes that share the lock now
// (none for a lock held exclusive). With each holder marking its ID in the
// state they share, an instance can tell whether those beside it share
// its state: a process that holds the lock but whose mark it cannot find
// keeps its state elsewhere. On PostgreSQL only holders seen at work are
// listed: a session that has run nothing for three keepalives (a holder
// checks its lock every keepalive) is a dead host's that the server has
// not dropped yet (until its TCP keepalive gives up, hours by default), a
// paused process's, or one of another database role, whose activity the
// server does not show.
func (l *InstanceLock) Others(ctx context.Context) ([]string, error) {
	if l.others == nil {
		return nil, nil
	}
	return l.others(ctx)
}

// Held reports whether this process holds the lock: always, for a SQLite
// file (the kernel holds it while the process lives); for PostgreSQL while
// its connection lives and the lock was not taken by another since.
func (l *InstanceLock) Held() bool { return l.held.Load() }

// Taken reports whether another process took the lock, held exclusive,
// since this one lost it (see LockInstance): this one does not take it
// again, for what it keeps in memory may miss what that one changed.
func (l *InstanceLock) Taken() bool { return l.taken.Load() }

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
// took it meanwhile: then report(ErrInUse), Taken turns true, and it is
// never taken again. The other process served the same data, and what
// it changed (a logout, a revocation, an account disabled: state this one
// keeps in memory) this one would not see: it must start again. Another
// that took the lock and let it go unseen (between two checks, or while
// this one could not reach the database) is found by the lock's
// generation, a count of its takes kept in a table of one row,
// specguard_instance_lock, made on the first take (a release of sqldb
// before it counted none). This process's own lost session, which the
// server may hold the lock for until its TCP keepalive gives up, is no
// other: it is ended, and the lock taken again.
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
//
// Each holder has an ID of its own, and Others lists the IDs of the
// other holders: a second lock on the holder's ID (beside the SQLite
// file, a file named by it, held exclusive; on PostgreSQL, an advisory
// lock of two keys, held shared on the same connection, which a session
// of this process the server has not yet seen end may hold too).
func (d *DB) ShareInstance(ctx context.Context, keepalive time.Duration, report func(error)) (*InstanceLock, error) {
	return d.lockInstance(ctx, keepalive, report, true)
}

func (d *DB) lockInstance(ctx context.Context, keepalive time.Duration, report func(error), shared bool) (*InstanceLock, error) {
	l := &InstanceLock{}
	var id uint32 // this sharer's, 0 when exclusive
	if shared {
		id = uint32(rand.Int32N(math.MaxInt32)) + 1
		l.id = fmt.Sprintf("%08x", id)
	}
	if d.src.Kind == SQLite {
		unlock, err := tryLockFile(d.lockPath(".instance-lock"), shared)
		if errors.Is(err, errLocked) {
			return nil, ErrInUse
		} else if err != nil {
			return nil, fmt.Errorf("locking %s: %v", d.src, err)
		}
		l.release = func() { unlock() }
		if shared {
			mark := d.lockPath(sharerSuffix + l.id)
			unmark, err := lockSharerFile(mark)
			if err != nil {
				unlock()
				return nil, fmt.Errorf("locking %s: %v", d.src, err)
			}
			l.release = func() {
				os.Remove(mark) // while locked: no other sharer takes it for its own
				unmark()
				unlock()
			}
			l.others = d.fileSharers(mark)
		}
		l.held.Store(true)
		return l, nil
	}
	var mine holding // this exclusive holder's take of the lock
	conn, err := d.lockConn(ctx, shared, id, &mine)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex // guards conn
	if shared {
		l.others = func(ctx context.Context) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			if conn == nil {
				return nil, fmt.Errorf("%w: %s: the instance lock's connection is lost", ErrUnavailable, d.src)
			}
			return advisorySharers(ctx, conn, id, sharedGrace*keepalive)
		}
	}
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
			err := d.keepLock(&conn, keepalive, shared, id, &mine)
			mu.Unlock()
			// Said once per change: lost, held by another, held again.
			// A shared lock held until its connection was lost still
			// counts as held for a few checks (sharedGrace): a database
			// that restarts does not stop a fleet that keeps its state in
			// Redis, and one that took the lock exclusive meanwhile is
			// seen as soon as the database answers (ErrInUse).
			inUse := errors.Is(err, ErrInUse)
			if inUse && !shared {
				// Never taken again (see LockInstance).
				mu.Lock()
				if conn != nil {
					conn.Close(context.Background())
					conn = nil
				}
				mu.Unlock()
				l.taken.Store(true)
				l.held.Store(false)
				report(err)
				return
			}
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

// sharerSuffix, then a sharer's ID, names the file beside a SQLite file
// that the sharer holds locked.
const sharerSuffix = ".sharer-"

// fileSharers lists the IDs of the processes that hold a sharer's file
// beside the SQLite file, but mark (this process's). A file no process
// holds is a holder's that died: it is removed.
func (d *DB) fileSharers(mark string) func(context.Context) ([]string, error) {
	dir, base := filepath.Split(d.lockPath(sharerSuffix))
	return func(context.Context) ([]string, error) {
		entries, err := os.ReadDir(filepath.Clean(dir))
		if err != nil {
			return nil, fmt.Errorf("listing the instances beside %s: %v", d.src, err)
		}
		var ids []string
		for _, e := range entries {
			path := filepath.Join(dir, e.Name())
			id, ok := strings.CutPrefix(e.Name(), base)
			if !ok || path == mark {
				continue
			}
			live, err := heldFile(path)
			if err != nil {
				return nil, fmt.Errorf("listing the instances beside %s: %v", d.src, err)
			}
			if live {
				ids = append(ids, id)
			}
		}
		return ids, nil
	}
}

// sharerClass is the first key of the advisory lock each sharer of
// instanceLockID holds on PostgreSQL, its ID the second.
const sharerClass = 0x73706573 // "spes"

// advisorySharers lists the IDs of the other sessions that hold a sharer's
// advisory lock in conn's database, but of the ID mine, and ran something
// within active.
func advisorySharers(ctx context.Context, conn *pgx.Conn, mine uint32, active time.Duration) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT l.objid::bigint FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid::bigint = $1 AND l.objsubid = 2 AND l.granted AND l.objid::bigint <> $2
		AND a.state_change > clock_timestamp() - $3 * interval '1 microsecond'`, sharerClass, int64(mine), active.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("%w: listing the instances: %s", ErrUnavailable, text.OneLine(err.Error()))
	}
	ids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var id int64
		err := row.Scan(&id)
		return fmt.Sprintf("%08x", id), err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: listing the instances: %s", ErrUnavailable, text.OneLine(err.Error()))
	}
	return ids, nil
}

// lockConn opens a connection of its own and takes the advisory lock on
// it, exclusive or shared, or fails with ErrInUse. A sharer (id not 0)
// also takes its own (sharerClass, id), shared too: a session of this
// process that the server has not yet seen end (a half-open connection)
// may still hold it, and the random ID is this process's alone.
func (d *DB) lockConn(ctx context.Context, shared bool, id uint32, mine *holding) (*pgx.Conn, error) {
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
		err := ErrInUse
		if !shared && mine.pid != 0 {
			err = ownStale(ctx, conn, *mine)
		}
		conn.Close(ctx)
		return nil, err
	}
	if id != 0 {
		err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock_shared($1::int4, $2::int4)`, sharerClass, int32(id)).Scan(&got)
		if err == nil && !got {
			err = fmt.Errorf("another instance holds the ID %08x", id)
		}
		if err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("%w: locking %s: %s", ErrUnavailable, d.src, text.OneLine(err.Error()))
		}
	}
	// Every take but an exclusive holder's own again counts one more in
	// the lock's generation; that holder, taking it again, finds whether
	// another held it meanwhile, seen or not (between two checks, or while
	// it could not reach the database).
	switch {
	case shared || mine.gen == 0:
		var n int64
		if n, err = bumpGeneration(ctx, conn); err == nil && !shared {
			mine.gen = n
		}
	default:
		var n int64
		if err = conn.QueryRow(ctx, `SELECT generation FROM `+generationTable+` WHERE id = 1`).Scan(&n); err == nil && n != mine.gen {
			conn.Close(ctx)
			return nil, errTakenMeanwhile
		}
	}
	if err == nil && !shared {
		// Which session holds it: after a partition, the server may hold
		// it for this one's lost session until its TCP keepalive gives up.
		err = conn.QueryRow(ctx, `SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&mine.pid, &mine.start)
	}
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("%w: locking %s: %s", ErrUnavailable, d.src, text.OneLine(err.Error()))
	}
	return conn, nil
}

// holding is an exclusive holder's take of the lock: the lock's
// generation it took (see lockConn), and the session it holds it on.
type holding struct {
	gen   int64
	pid   int32
	start time.Time
}

// ownStale says why the lock, held exclusive, could not be taken again:
// ErrInUse when another session holds it, but when it is this process's
// own lost session (a partition the server has not seen end), that
// session is ended (pg_terminate_backend) and the error is one to try
// again after, not another process's.
func ownStale(ctx context.Context, conn *pgx.Conn, mine holding) error {
	var pid int32
	var start time.Time
	err := conn.QueryRow(ctx, `SELECT l.pid, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1 AND l.granted
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`, instanceLockID).Scan(&pid, &start)
	if err != nil || pid != mine.pid || !start.Equal(mine.start) {
		return ErrInUse
	}
	_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
	return fmt.Errorf("%w: the instance lock is held by this instance's lost session (pid %d), ended now", ErrUnavailable, pid)
}

// generationTable counts the takes of the instance lock on PostgreSQL (see
// lockConn), in the schema the service's tables are in: instances of
// another schema serve other data.
const generationTable = "specguard_instance_lock"

// errTakenMeanwhile: the lock's generation moved while an exclusive holder
// had lost it: another process held it (ErrInUse).
var errTakenMeanwhile = fmt.Errorf("%w (meanwhile)", ErrInUse)

// bumpGeneration counts one more take of the lock, conn holding it, and
// returns the count.
func bumpGeneration(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n int64
	var err error
	for range 2 { // two holders of a shared lock may make the table at once: one loses (23505), once
		if _, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+generationTable+` (id int PRIMARY KEY, generation bigint NOT NULL)`); err != nil {
			continue
		}
		err = conn.QueryRow(ctx, `INSERT INTO `+generationTable+` VALUES (1, 1)
			ON CONFLICT (id) DO UPDATE SET generation = `+generationTable+`.generation + 1 RETURNING generation`).Scan(&n)
		if err == nil {
			return n, nil
		}
	}
	return 0, err
}

// keepLock checks that *conn still holds the lock, and takes it again on
// a new connection when it does not.
func (d *DB) keepLock(conn **pgx.Conn, timeout time.Duration, shared bool, id uint32, mine *holding) error {
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
	c, err := d.lockConn(ctx, shared, id, mine)
	if err != nil {
		return err
	}
	*conn = c
	return nil
}
