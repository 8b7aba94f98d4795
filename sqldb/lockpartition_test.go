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

// partProxy forwards TCP to target. part is a network partition as a
// client lives it: the client side of every connection drops and new
// ones are refused until heal, while the server hears nothing of it until
// serverNotices (its TCP keepalive giving up); cut is both at once. A
// connection its client ends otherwise ends on the server too.
type partProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	down    bool
	clients []net.Conn
	servers []net.Conn
}

func newPartProxy(t *testing.T, target string) *partProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partProxy{ln: ln}
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
			p.clients = append(p.clients, c)
			p.servers = append(p.servers, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); p.passOn(s) }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

// passOn ends s, a client's connection's server side, unless the client's
// end came from a partition.
func (p *partProxy) passOn(s net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.down {
		s.Close()
	}
}

func (p *partProxy) part() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.clients {
		c.Close()
	}
	p.clients = nil
}

func (p *partProxy) heal() { p.mu.Lock(); p.down = false; p.mu.Unlock() }

func (p *partProxy) serverNotices() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.servers {
		s.Close()
	}
	p.servers = nil
}

func (p *partProxy) cut() { p.part(); p.serverNotices() }

// lockThrough is an instance lock taken through a partProxy to a new
// database (direct is its address without the proxy), checked every
// 100ms, and until, which waits for what it says to become true.
func lockThrough(t *testing.T) (l *sqldb.InstanceLock, p *partProxy, direct string, until func(what string, ok func() bool)) {
	t.Helper()
	direct = pgtest.New(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p = newPartProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	d := open0(t, sqldb.Source{Kind: sqldb.Postgres, DSN: u.String()}, sqldb.WithTimeout(300*time.Millisecond))
	l, err = d.LockInstance(ctx, 100*time.Millisecond, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Release)
	until = func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never %s (Held %v, Taken %v)", what, l.Held(), l.Taken())
			}
		}
	}
	return l, p, direct, until
}

// Another instance that takes the lock and lets it go while this one
// cannot reach the database (a partition: every check fails unreachable,
// none sees ErrInUse) is found by the lock's generation: the lock is not
// taken again (helper-181, on 98ae029).
func TestLockTakenDuringPartitionNotRetaken(t *testing.T) {
	l, p, direct, until := lockThrough(t)
	// A partition no other instance used: the lock is taken again.
	p.cut()
	until("lost across the first partition", func() bool { return !l.Held() })
	p.heal()
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
	p.heal()
	until("found taken", l.Taken)
	time.Sleep(300 * time.Millisecond) // three checks, each a chance to take it again
	if l.Held() {
		t.Error("held again after another instance held the lock during the partition")
	}
}

// A partition the server does not see end leaves the lock held by this
// instance's own lost session (until its TCP keepalive gives up): that is
// no other process, and the lock is taken again once it ends; 98ae029
// took it for another and refused every request until a restart
// (helper-182).
func TestOwnHalfOpenSessionIsNotAnother(t *testing.T) {
	l, p, _, until := lockThrough(t)
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
