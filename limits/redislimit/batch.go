package redislimit

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends the script calls of concurrent requests to Redis together,
// in one pipeline: one write and one read on the connection for many
// requests, where a call each would cost a system call pair each. Every
// request still makes exactly one round trip; under load it shares it.
// Workers are started on demand, at most max at once, and stop as soon as
// the queue is empty: an idle store holds no goroutine.
type batcher struct {
	rdb     redis.UniversalClient
	max     int           // workers at most
	limit   int           // calls per pipeline at most
	timeout time.Duration // bound on one pipeline

	mu      sync.Mutex
	queue   []*scriptCall
	running int
}

type scriptCall struct {
	ctx    context.Context // the caller's: a call whose caller gave up is not sent
	script *redis.Script
	keys   []string
	args   []any
	raw    []int64
	err    error
	done   chan struct{}
}

// run sends the call with the next pipeline and waits for its answer or ctx.
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args []any) ([]int64, error) {
	c := &scriptCall{ctx: ctx, script: script, keys: keys, args: args, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.running < b.max {
		b.running++
		go b.work()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.raw, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *batcher) work() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.limit)
		if n == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		batch := make([]*scriptCall, 0, n)
		for _, c := range b.queue[:n] {
			// A caller that gave up (its timeout passed while Redis was
			// slow or down) has answered already: charging for it now would
			// count a request twice, or one that on-store-error admitted.
			if err := c.ctx.Err(); err != nil {
				c.err = err
				close(c.done)
				continue
			}
			batch = append(batch, c)
		}
		b.queue = append(b.queue[:0], b.queue[n:]...)
		b.mu.Unlock()
		if len(batch) > 0 {
			b.exec(batch)
		}
	}
}

func (b *batcher) exec(batch []*scriptCall) {
	// The pipeline may take as long as its most patient caller.
	latest := time.Time{}
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
		if !ok {
			latest = time.Now().Add(b.timeout)
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), latest)
	defer cancel()
	if len(batch) == 1 {
		c := batch[0]
		c.raw, c.err = c.script.Run(ctx, b.rdb, c.keys, c.args...).Int64Slice()
		close(c.done)
		return
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	var again []*scriptCall
	for i, c := range batch {
		c.raw, c.err = cmds[i].Int64Slice()
		if c.err != nil && redis.HasErrorPrefix(c.err, "NOSCRIPT") {
			again = append(again, c)
			continue
		}
		close(c.done)
	}
	if len(again) > 0 {
		b.reload(ctx, again)
	}
}

// reload sends calls whose script Redis did not know (a restart, SCRIPT
// FLUSH) again, after loading each script once: two round trips for the
// whole batch, rather than one each in turn.
func (b *batcher) reload(ctx context.Context, calls []*scriptCall) {
	loaded := map[*redis.Script]error{}
	for _, c := range calls {
		if _, done := loaded[c.script]; !done {
			loaded[c.script] = c.script.Load(ctx, b.rdb).Err()
		}
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range calls {
		if err := loaded[c.script]; err != nil {
			c.raw, c.err = nil, err
		} else {
			c.raw, c.err = cmds[i].Int64Slice()
		}
		close(c.done)
	}
}
