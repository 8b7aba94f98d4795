package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/security"
)

// A write that takes something away (a revocation, logout everywhere, an
// account's new state, a refresh found reused) must outlive a failover. Redis
// replicates asynchronously: a replica promoted before it had the write
// would bring back what was taken away. A missing record counts as dead,
// but an older one counts as alive: a logged-out token would pass again.
// So such a write is answered only once every replica of its master has
// it (WAIT); otherwise it is ErrUnavailable, and the caller says it failed.

// markTTL is how long the mark a durable write sets lives: long enough to
// be replicated, and no longer.
const markTTL = 10 * time.Second

// durable runs write, a script that may take something away from
// subject (took: it did, or may have), then waits until every replica of
// the master that holds subject's keys has everything that master did up
// to it. write runs on the store's client, which retries it when its
// answer is lost (the scripts are written to be run again); the wait runs
// on a connection of its own to that master. Replicas are counted as the master knows them: on a
// Cluster, every replica of its slots not marked failed, connected or not
// (a replica whose link is down is the one a failover would promote
// without the write); on one Redis, the replicas connected to it (one
// that has lost its link is not known: set min-replicas-to-write there).
// A Ring's shards are taken as they are. write returns Redis's error,
// made ErrUnavailable here.
//
// A rotation is not waited for unless it found a reuse: its answer lost,
// the client would present the refresh token it replaced, a reuse, and be
// logged out. Undone by a failover, it is found a reuse all the same when
// the client presents the token it was given.
func (s *Store) durable(ctx context.Context, subject string, write func(redis.Scripter) (took bool, err error)) error {
	took, err := write(s.rdb)
	if err != nil || !took {
		return wrapRedis(err)
	}
	conn, replicas, err := s.master(ctx, subject)
	if err != nil || replicas == 0 {
		if cluster, ok := s.rdb.(*redis.ClusterClient); ok && err != nil {
			cluster.ReloadState(ctx)
		}
		return wrapRedis(err)
	}
	defer conn.Close()
	// The mark makes the master's offset this connection's, so that WAIT
	// covers the write and whatever the master did before it: a
	// revocation found done still waits for the one that did it.
	var acked *redis.Cmd
	_, err = conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.tag(subject)+":w", "", markTTL)
		acked = p.Do(ctx, "WAIT", replicas, waitTime(ctx).Milliseconds())
		return nil
	})
	if err != nil {
		if cluster, ok := s.rdb.(*redis.ClusterClient); ok && moved(err) {
			// The slot has moved since: the next call asks its new master.
			cluster.ReloadState(ctx)
		}
		return wrapRedis(err)
	}
	n, err := acked.Int64()
	if err != nil {
		return wrapRedis(err)
	}
	if n < int64(replicas) {
		return fmt.Errorf("%w: redis: the write reached %d of the master's %d replicas in time: a failover could undo it", security.ErrUnavailable, n, replicas)
	}
	return nil
}

// master returns a connection to the master that holds subject's keys
// and how many replicas it has (see durable); no connection when it has
// none, or the client is a Ring. On a Cluster, a node of no replicas is
// asked whether it holds subject's slot: one that no longer does (the
// client's map predates a resharding) is not the master the write went
// to, whose replicas are not counted (an error, and the map is read
// again). A node of replicas is asked by the mark (MOVED).
func (s *Store) master(ctx context.Context, subject string) (*redis.Conn, int, error) {
	var node *redis.Client
	cluster := false
	switch rdb := s.rdb.(type) {
	case *redis.ClusterClient:
		var err error
		if node, err = rdb.MasterForKey(ctx, s.tag(subject)); err != nil {
			return nil, 0, err
		}
		cluster = true
	case *redis.Client:
		node = rdb
	default:
		return nil, 0, nil
	}
	conn := node.Conn()
	replicas, slots, err := replicasOf(ctx, conn, cluster)
	if err == nil && cluster && replicas == 0 {
		var slot int64
		if slot, err = conn.ClusterKeySlot(ctx, s.tag(subject)).Result(); err == nil && !holdsSlot(slots, slot) {
			err = fmt.Errorf("CLUSTER NODES: the node the client takes for slot %d's master does not hold it (a resharding is under way)", slot)
		}
	}
	if err != nil || replicas == 0 {
		conn.Close()
		return nil, 0, err
	}
	return conn, replicas, nil
}

// waitTime is how long WAIT may block: what is left of ctx's time but a
// margin to read its answer, at least a millisecond (0 blocks for ever).
func waitTime(ctx context.Context) time.Duration {
	d := time.Second
	if deadline, ok := ctx.Deadline(); ok {
		d = time.Until(deadline) * 3 / 4
	}
	return max(d, time.Millisecond)
}

// replicasOf counts the replicas of the master conn is connected to, and
// on a Cluster returns the slots it holds (CLUSTER NODES: "0-5460",
// "5461", "[5462->-id]" while one migrates away).
func replicasOf(ctx context.Context, conn *redis.Conn, cluster bool) (int, []string, error) {
	if !cluster {
		role, err := conn.Do(ctx, "ROLE").Slice()
		if err != nil {
			return 0, nil, err
		}
		if len(role) < 3 || role[0] != "master" {
			return 0, nil, errors.New("ROLE: the server is not a master")
		}
		list, _ := role[2].([]any)
		return len(list), nil, nil
	}
	nodes, err := conn.ClusterNodes(ctx).Result()
	if err != nil {
		return 0, nil, err
	}
	var self string
	var slots []string
	var masters []string // the master of each replica counted
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		flags := strings.Split(f[2], ",")
		switch {
		case slices.Contains(flags, "myself") && !slices.Contains(flags, "master"):
			// A master no more (the client's map of the slots predates a
			// failover): its count would be none.
			return 0, nil, errors.New("CLUSTER NODES: the node the client takes for the master is not one (a failover is under way)")
		case slices.Contains(flags, "myself"):
			self, slots = f[0], f[8:]
		case slices.Contains(flags, "slave") && !slices.Contains(flags, "fail") && !slices.Contains(flags, "handshake"):
			masters = append(masters, f[3])
		}
	}
	n := 0
	for _, m := range masters {
		if m == self {
			n++
		}
	}
	return n, slots, nil
}

// holdsSlot reports whether slots (see replicasOf) hold slot: a slot
// migrating away is still held until it has moved.
func holdsSlot(slots []string, slot int64) bool {
	for _, r := range slots {
		if strings.HasPrefix(r, "[") {
			continue // a migration's note; the slot is in a range too
		}
		lo, hi, _ := strings.Cut(r, "-")
		if hi == "" {
			hi = lo
		}
		a, errA := strconv.ParseInt(lo, 10, 64)
		b, errB := strconv.ParseInt(hi, 10, 64)
		if errA == nil && errB == nil && a <= slot && slot <= b {
			return true
		}
	}
	return false
}

// moved reports whether err is a Cluster's redirection (MOVED or ASK).
func moved(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}
