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
