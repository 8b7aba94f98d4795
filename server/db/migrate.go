package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrSchemaTooNew is returned when the database was migrated by a newer
// specguard than this one: its schema may have changed under this binary.
var ErrSchemaTooNew = errors.New("the database schema is newer than this specguard")

// Versions reports the schema version of the database (0 when it was never
// migrated) and the newest version this binary knows.
func (d *DB) Versions(ctx context.Context) (current, known int64, err error) {
	p, err := d.provider(nil)
	if err != nil {
		return 0, 0, err
	}
	current, known, err = p.GetVersions(ctx)
	if err != nil {
		return 0, 0, d.fail(err)
	}
	return current, known, nil
}

// Migrate applies the migrations the database lacks, holding a lock so that
// instances starting at once apply each one exactly once: PostgreSQL's
// advisory lock, or a lock file beside the SQLite file. It returns the
// version before and after. A database at a newer version than this binary
// knows is refused with ErrSchemaTooNew, naming both.
func (d *DB) Migrate(ctx context.Context, log *slog.Logger) (from, to int64, err error) {
	var locker lock.SessionLocker
	switch d.src.Kind {
	case Postgres:
		// An advisory lock, tried every second for up to five minutes.
		locker, err = lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return 0, 0, err
		}
	case SQLite:
		locker = &fileLock{path: d.src.DSN + ".migrate-lock"}
	}
	p, err := d.provider(locker)
	if err != nil {
		return 0, 0, err
	}
	if from, _, err = d.checkVersions(ctx, p); err != nil {
		return from, from, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return from, from, fmt.Errorf("migrating the database %s: %w", d.src, d.fail(err))
	}
	for _, r := range results {
		if log != nil {
			log.Info("migrated", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration.String())
		}
	}
	// Another instance may have migrated in the meantime, with a newer binary.
	to, _, err = d.checkVersions(ctx, p)
	return from, to, err
}

func (d *DB) checkVersions(ctx context.Context, p *goose.Provider) (current, known int64, err error) {
	current, known, err = p.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the schema version of %s: %w", d.src, d.fail(err))
	}
	if current > known {
		return current, known, fmt.Errorf("%w: %s is at schema version %d, this specguard knows versions up to %d; run a specguard at least as new as the one that migrated it", ErrSchemaTooNew, d.src, current, known)
	}
	return current, known, nil
}

func (d *DB) provider(locker lock.SessionLocker) (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	if d.src.Kind == Postgres {
		dialect = goose.DialectPostgres
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithLogger(goose.NopLogger())}
	if locker != nil {
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, d.w, sub, opts...)
}

// fileLock is a goose session locker for SQLite: an exclusive flock on a
// file beside the database, held while migrations run, so processes
// sharing the file on one host migrate one at a time.
type fileLock struct {
	path    string
	release func() error
}

var _ lock.SessionLocker = (*fileLock)(nil)

func (l *fileLock) SessionLock(ctx context.Context, _ *sql.Conn) error {
	release, err := lockFile(ctx, l.path)
	if err != nil {
		return fmt.Errorf("locking %s: %w", l.path, err)
	}
	l.release = release
	return nil
}

func (l *fileLock) SessionUnlock(context.Context, *sql.Conn) error {
	if l.release == nil {
		return nil
	}
	err := l.release()
	l.release = nil
	return err
}
