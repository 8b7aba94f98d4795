package sqldb_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/sqldb"
)

// cutProxy forwards TCP to target until cut, which drops every
// connection and refuses new ones until mend: a network partition.
type cutProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	target string
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) mend() { p.mu.Lock(); p.down = false; p.mu.Unlock() }

// Another instance that takes the lock and lets it go while this one
// cannot reach the database (a partition: every check fails unreachable,
// none sees ErrInUse) is found by the lock's generation: the lock is not
// taken again (helper-181, on 98ae029).
func TestLockTakenDuringPartitionNotRetaken(t *testing.T) {
	direct := pgtest.New(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	d := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: u.String()}, sqldb.WithTimeout(300*time.Millisecond))
	l, err := d.LockInstance(ctx, 100*time.Millisecond, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()

	until := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never %s", what)
			}
		}
	}
	// A partition no other instance used: the lock is taken again.
	p.cut()
	until("lost across the first partition", func() bool { return !l.Held() })
	p.mend()
	until("held again after the first partition", l.Held)
	if l.Taken() {
		t.Fatal("taken, though no other instance held the lock")
	}
	// A partition during which another instance held the lock, and let it
	// go: every check failed unreachable, none saw ErrInUse.
	p.cut()
	until("lost across the second partition", func() bool { return !l.Held() })
	other := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: direct})
	ol, err := other.LockInstance(ctx, time.Hour, func(error) {})
	if err != nil {
		t.Fatalf("the other instance could not take the lock: %v", err)
	}
	ol.Release()
	p.mend()
	until("found taken", l.Taken)
	time.Sleep(300 * time.Millisecond) // three checks, each a chance to take it again
	if l.Held() {
		t.Error("held again after another instance held the lock during the partition")
	}
}

// halfOpenProxy forwards TCP to target. part() is a partition as the
// server lives it: the client's side of every connection dies, new ones
// are refused, but the server never hears of it (no FIN, no RST reaches
// it), so its sessions live on (until its TCP keepalive, two hours by
// default). heal() lets new connections through; serverNotices() ends the
// server's side of the old ones.
type halfOpenProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	down    bool
	clients []net.Conn
	servers []net.Conn
}

func newHalfOpenProxy(t *testing.T, target string) *halfOpenProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &halfOpenProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.part(); p.serverNotices() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.clients = append(p.clients, c)
			p.servers = append(p.servers, s)
			p.mu.Unlock()
			// Neither side's end is passed on: the server's session
			// outlives the client's connection.
			go io.Copy(s, c)
			go io.Copy(c, s)
		}
	}()
	return p
}

func (p *halfOpenProxy) part() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.clients {
		c.Close()
	}
	p.clients = nil
}

func (p *halfOpenProxy) heal() { p.mu.Lock(); p.down = false; p.mu.Unlock() }

func (p *halfOpenProxy) serverNotices() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.servers {
		s.Close()
	}
	p.servers = nil
}

// A partition the server does not see end leaves the lock held by this
// instance's own lost session (until its TCP keepalive gives up): that is
// no other process, and the lock is taken again once it ends; 98ae029
// took it for another and refused every request until a restart
// (helper-182).
func TestOwnHalfOpenSessionIsNotAnother(t *testing.T) {
	direct := pgtest.New(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p := newHalfOpenProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	d := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: u.String()}, sqldb.WithTimeout(300*time.Millisecond))
	l, err := d.LockInstance(ctx, 100*time.Millisecond, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	until := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never %s (Held %v, Taken %v)", what, l.Held(), l.Taken())
			}
		}
	}
	p.part()
	until("lost across the partition", func() bool { return !l.Held() })
	time.Sleep(300 * time.Millisecond)
	p.heal()
	time.Sleep(500 * time.Millisecond) // the old session still holds the lock
	p.serverNotices()                  // the server's TCP keepalive gives up on it
	until("held again once its own stale session ended", l.Held)
	if l.Taken() {
		t.Fatal("Taken, though no other process ever held the lock")
	}
}

// An instance of a release before the generation table (it takes the
// advisory lock and counts nothing: a rollback, or one started by hand
// during an outage) that holds the lock while this one cannot reach the
// database and lets it go is not found: this one serves again from its
// stale memory. The README says it "knows even when it did not see the
// other".
