package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/state"
)

// Compaction defaults: every DefaultCompactInterval the leader compacts
// etcd's history up to the revision it saw DefaultCompactRetention ago,
// so between the retention and the retention plus one interval of history
// stays readable. A node whose watch was cut for less than that catches
// up from where it was; one cut for longer reads the state afresh.
const (
	DefaultCompactInterval  = 5 * time.Minute
	DefaultCompactRetention = 10 * time.Minute
)

// CompactStats counts the compactions this node made as leader, and the
// revision of the latest; safe for concurrent use.
type CompactStats struct {
	compactions atomic.Int64
	revision    atomic.Int64
}

// Compactions returns how many compactions this node made.
func (s *CompactStats) Compactions() int64 { return s.compactions.Load() }

// Revision returns the revision of the latest compaction this node made
// (0 for none).
func (s *CompactStats) Revision() int64 { return s.revision.Load() }

// Compactor returns the leader task that compacts etcd's history every
// interval, to the revision it saw retention before. The target is first
// written to <prefix>/compaction under the fence and a compare on that
// key's version, so a deposed leader, or two fleets' leaders racing on
// one etcd, never compact twice for one target. Compaction is global to
// the etcd cluster: fleets that share an etcd compact it each with its
// own retention, and an etcd that something else compacts needs
// interval 0 (no compaction here).
func Compactor(cli *clientv3.Client, keys state.Keys, interval, retention time.Duration, timeout time.Duration, stats *CompactStats, log *slog.Logger) LeaderTask {
	return func(ctx context.Context, f Fence) error {
		if interval <= 0 {
			<-ctx.Done()
			return nil
		}
		if stats == nil {
			stats = &CompactStats{}
		}
		c := &compactor{cli: cli, key: keys.Prefix + "/compaction", retention: retention, timeout: timeout, stats: stats, log: log}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := c.step(ctx, f, time.Now()); err != nil && ctx.Err() == nil {
				if errors.Is(err, state.ErrFenceLost) {
					return err
				}
				log.Warn("could not compact etcd's history; retrying at the next interval", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}
}

// compactor keeps the revisions it saw, oldest first, and compacts to the
// newest one that is at least retention old.
type compactor struct {
	cli       *clientv3.Client
	key       string
	retention time.Duration
	timeout   time.Duration
	stats     *CompactStats
	log       *slog.Logger
	seen      []seenRevision
}

type seenRevision struct {
	at  time.Time
	rev int64
}

func (c *compactor) step(ctx context.Context, f Fence, now time.Time) error {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.cli.Get(rctx, c.key)
	if err != nil {
		return fmt.Errorf("read the compaction record: %w", err)
	}
	c.seen = append(c.seen, seenRevision{at: now, rev: resp.Header.Revision})
	target := int64(0)
	for len(c.seen) > 0 && now.Sub(c.seen[0].at) >= c.retention {
		target = c.seen[0].rev
		c.seen = c.seen[1:]
	}
	var last, version int64
	if len(resp.Kvs) > 0 {
		last, _ = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
		version = resp.Kvs[0].Version
	}
	if target <= last {
		return nil // nothing new, or another leader got there first
	}
	err = f.txn(rctx, []clientv3.Cmp{clientv3.Compare(clientv3.Version(c.key), "=", version)},
		clientv3.OpPut(c.key, strconv.FormatInt(target, 10)))
	switch {
	case errors.Is(err, errGuardFailed):
		return nil // another leader recorded a target meanwhile
	case err != nil:
		return fmt.Errorf("record the compaction target: %w", err)
	}
	start := time.Now()
	if _, err := c.cli.Compact(rctx, target); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compact to revision %d: %w", target, err)
	}
	c.stats.compactions.Add(1)
	c.stats.revision.Store(target)
	c.log.Info("compacted etcd's history", "revision", target, "took", time.Since(start))
	return nil
}
