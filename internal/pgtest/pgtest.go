// Package pgtest gives tests PostgreSQL databases of their own.
//
// New makes a fresh database on the server SPECGUARD_TEST_POSTGRES_URL
// names (default postgres://postgres@127.0.0.1:5432/postgres, trust auth),
// dropped when the test ends. Start runs a throwaway PostgreSQL server of
// the test's own (initdb and postgres from the machine's installation), for
// tests that stop and restart it. When neither is possible the test is
// skipped, except under CI=true, where a missing PostgreSQL is a failure.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/testenv"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// DefaultURL is the server New uses when SPECGUARD_TEST_POSTGRES_URL is empty.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func unavailable(t testing.TB, why string) {
	t.Helper()
	testenv.Unavailable(t, "PostgreSQL", why, "start one on 127.0.0.1:5432 or set SPECGUARD_TEST_POSTGRES_URL")
}

var counter atomic.Int64

// New creates a database for this test on the shared server and returns its
// URL. The database is dropped when the test ends.
func New(t testing.TB) string {
	t.Helper()
	return NewIn(t, "")
}

// NewIn is New with options of CREATE DATABASE, such as a locale that
// orders text otherwise than the server's default:
// "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'". Unless they
// name an ENCODING, the database is in UTF8, which sqldb requires, also on
// a server whose default is not (one made in the C locale is SQL_ASCII).
func NewIn(t testing.TB, options string) string {
	t.Helper()
	if up := strings.ToUpper(options); !strings.Contains(up, "ENCODING") {
		if !strings.Contains(up, "TEMPLATE") {
			options += " TEMPLATE template0"
		}
		options += " ENCODING 'UTF8'"
	}
	testenv.Outside(t, "PostgreSQL")
	admin := os.Getenv("SPECGUARD_TEST_POSTGRES_URL")
	if admin == "" {
		admin = DefaultURL
	}
	return create(t, admin, options)
}

func create(t testing.TB, admin, options string) string {
	t.Helper()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		unavailable(t, err.Error())
	}
	name := fmt.Sprintf("sgtest_%d_%d_%d", os.Getpid(), counter.Add(1), time.Now().UnixNano()%1e6)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" "+options); err != nil {
		t.Fatalf("pgtest: CREATE DATABASE: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: DROP DATABASE %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Server is a PostgreSQL server of one test's own, on a free loopback port.
type Server struct {
	// URL reaches the server's postgres database; New makes databases on it.
	URL  string
	port int
	dir  string
	bin  string
	cmd  *exec.Cmd
	as   *user.User // the server's user when the test runs as root
}

// binDir finds the directory of initdb and postgres.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb is not installed (apt-get install postgresql)")
}

// Start initialises and starts a server for this test; it is stopped (as a
// crash would stop it) when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	testenv.Outside(t, "a PostgreSQL server of its own")
	bin, err := binDir()
	if err != nil {
		unavailable(t, err.Error())
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		if s.as, err = user.Lookup("postgres"); err != nil {
			unavailable(t, "running as root and there is no postgres user to run the server as")
		}
	}
	// Not t.TempDir: the server's user must be able to reach the directory.
	if s.dir, err = os.MkdirTemp("", "specguard-pg-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(s.dir) })
	if err := s.chown(s.dir); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(s.dir, "data")
	if out, err := s.command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s.port = testenv.FreePort(t)
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	s.start(t)
	t.Cleanup(s.Stop)
	return s
}

// New creates a database for this test on s and returns its URL.
func (s *Server) New(t testing.TB) string {
	t.Helper()
	return create(t, s.URL, "")
}

func (s *Server) chown(path string) error {
	if s.as == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.as.Uid)
	gid, _ := strconv.Atoi(s.as.Gid)
	return os.Chown(path, uid, gid)
}

// command runs name as the server's user, so that signals reach the
// server itself and not a wrapper such as runuser.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	if s.as != nil {
		uid, _ := strconv.Atoi(s.as.Uid)
		gid, _ := strconv.Atoi(s.as.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(os.Environ(), "HOME="+s.dir, "USER="+s.as.Username)
	}
	return cmd
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.cmd = s.command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.port), "-h", "127.0.0.1", "-k", s.dir,
		"-c", "fsync=off", "-c", "max_connections=200", "-c", "logging_collector=off")
	logf, err := os.Create(filepath.Join(s.dir, "postgres.log"))
	if err == nil {
		s.chown(logf.Name())
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("pgtest: starting postgres: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, _ := sql.Open("pgx", s.URL)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		db.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			s.Stop()
			t.Fatalf("pgtest: postgres on port %d did not answer: %v\n%s", s.port, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server, as a crash would, and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	// SIGQUIT is PostgreSQL's immediate shutdown: no checkpoint, recovery
	// from WAL at the next start, as after a crash.
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
	// The postmaster may leave children for a moment; wait for the port.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts the server again on the same port and data after Stop.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	_ = os.Remove(filepath.Join(s.dir, "data", "postmaster.pid"))
	s.start(t)
}
