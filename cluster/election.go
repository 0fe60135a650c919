package cluster

import (
	"context"
	"sync"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
)

// campaign takes part in the election until ctx ends (the session's
// context, which ends when the lease is lost or the node stops). While this
// node leads it runs the leader tasks under a context that ends with the
// leadership. When ctx ends it resigns, so another node takes over at once.
func (m *Member) campaign(ctx context.Context, sess *concurrency.Session) {
	e := concurrency.NewElection(sess, m.opts.Keys.Leader())
	for ctx.Err() == nil {
		if err := e.Campaign(ctx, m.opts.Name); err != nil {
			if ctx.Err() == nil {
				m.log.Warn("leader campaign failed; retrying", "err", err)
				ctxutil.Sleep(ctx, time.Second)
			}
			continue
		}
		m.lead(ctx, e)
	}
}

// lead runs the leader tasks until ctx ends or the leadership is lost.
func (m *Member) lead(ctx context.Context, e *concurrency.Election) {
	m.leader.Store(true)
	m.log.Info("became leader", "node", m.opts.Name, "key", e.Key(), "rev", e.Rev())
	lctx, cancel := context.WithCancel(ctx)
	fence := Fence{cli: m.opts.Client, Key: e.Key(), Rev: e.Rev()}
	var wg sync.WaitGroup
	for _, task := range m.opts.Tasks {
		wg.Go(func() { m.runTask(lctx, task, fence) })
	}
	wg.Go(func() { m.watchLeadership(lctx, cancel, fence) })
	<-lctx.Done()
	cancel()
	wg.Wait()
	m.leader.Store(false)
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	if err := e.Resign(rctx); err != nil {
		m.log.Debug("resign", "err", err)
	}
	m.log.Info("leadership ended", "node", m.opts.Name)
}

// watchLeadership ends the leadership if this node's election key
// disappears (deleted by an operator, or its lease revoked).
func (m *Member) watchLeadership(ctx context.Context, cancel context.CancelFunc, f Fence) {
	t := time.NewTicker(m.opts.PublishInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, rcancel := context.WithTimeout(ctx, m.opts.Timeout)
		resp, err := m.opts.Client.Get(rctx, f.Key)
		rcancel()
		if err == nil && (len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != f.Rev) {
			m.log.Warn("leader key lost; stepping down", "key", f.Key)
			cancel()
			return
		}
	}
}

// runTask runs one leader task, restarting it after a pause if it returns
// while the leadership lasts.
func (m *Member) runTask(ctx context.Context, task LeaderTask, f Fence) {
	for ctx.Err() == nil {
		if err := task(ctx, f); err != nil && ctx.Err() == nil {
			m.log.Warn("leader task failed; restarting it", "err", err)
		}
		ctxutil.Sleep(ctx, time.Second)
	}
}
