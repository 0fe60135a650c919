package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/state"
)

// DeployProgress is how far the live nodes are in serving a site at a
// state revision.
type DeployProgress struct {
	// Done is true when every live node serves it.
	Done  bool
	Nodes []NodeProgress
}

// NodeProgress is one live node's progress.
type NodeProgress struct {
	Node            string
	AppliedRevision int64
	Serving         bool
	// Error is the node's error for the site, or why it does not serve
	// the revision yet.
	Error string
}

// Progress computes the progress of domain at rev from the records of the
// live nodes.
func Progress(live map[string]NodeRecord, domain string, rev int64) DeployProgress {
	out := DeployProgress{Done: true, Nodes: []NodeProgress{}}
	for _, name := range slices.Sorted(maps.Keys(live)) {
		r := live[name]
		p := NodeProgress{Node: name, AppliedRevision: r.AppliedRevision, Error: r.SiteErrors[domain]}
		p.Serving = r.AppliedRevision >= rev && p.Error == ""
		if !p.Serving && p.Error == "" {
			p.Error = fmt.Sprintf("serves revision %d, not yet %d", r.AppliedRevision, rev)
		}
		out.Done = out.Done && p.Serving
		out.Nodes = append(out.Nodes, p)
	}
	return out
}

// WaitDeployed returns once every live node serves domain at state
// revision rev without an error, or when ctx ends (with the last progress
// seen and ctx's error). It reads the live nodes' records once, then
// follows their changes with a watch, so it answers as soon as the last
// node's record says it serves: no read per change, no polling. A failed
// watch is followed by a fresh read; timeout bounds each read.
func WaitDeployed(ctx context.Context, cli *clientv3.Client, keys state.Keys, domain string, rev int64, timeout time.Duration) (DeployProgress, error) {
	var last DeployProgress
	for {
		live, at, err := readLive(ctx, cli, keys, timeout)
		if err == nil {
			last = Progress(live, domain, rev)
			if last.Done {
				return last, nil
			}
			var done bool
			last, done = followLive(ctx, cli, keys, live, at, domain, rev, last)
			if done {
				return last, nil
			}
		}
		if !ctxutil.Sleep(ctx, 100*time.Millisecond) {
			return last, ctx.Err()
		}
	}
}

// readLive reads the records of the live nodes (from the fleet's view)
// and the revision read at.
func readLive(ctx context.Context, cli *clientv3.Client, keys state.Keys, timeout time.Duration) (map[string]NodeRecord, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := ReadView(rctx, cli, keys)
	if err != nil {
		return nil, 0, err
	}
	live := make(map[string]NodeRecord, len(v.Nodes))
	for _, n := range v.Nodes {
		if n.Live {
			live[n.Name] = n.NodeRecord
		}
	}
	return live, v.Revision, nil
}

// followLive applies the changes of the node records after revision at to
// live until the progress is done (true), the watch fails or ctx ends
// (false). It returns the last progress.
func followLive(ctx context.Context, cli *clientv3.Client, keys state.Keys, live map[string]NodeRecord, at int64, domain string, rev int64, last DeployProgress) (DeployProgress, bool) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range cli.Watch(clientv3.WithRequireLeader(wctx), keys.Nodes(), clientv3.WithPrefix(), clientv3.WithRev(at+1)) {
		if resp.Err() != nil {
			return last, false
		}
		for _, ev := range resp.Events {
			name := strings.TrimPrefix(string(ev.Kv.Key), keys.Nodes())
			if ev.Type == clientv3.EventTypeDelete {
				delete(live, name) // its lease ended: it left the fleet
				continue
			}
			var r NodeRecord
			if json.Unmarshal(ev.Kv.Value, &r) == nil {
				live[name] = r
			}
		}
		if last = Progress(live, domain, rev); last.Done {
			return last, true
		}
	}
	return last, false
}

// DeployOutcome reads once where the live nodes are with domain at state
// revision rev: done when every live node serves it, and the errors the
// nodes that fail to serve the site report (by node).
func DeployOutcome(ctx context.Context, cli *clientv3.Client, keys state.Keys, domain string, rev int64, timeout time.Duration) (done bool, failures map[string]string, err error) {
	live, _, err := readLive(ctx, cli, keys, timeout)
	if err != nil {
		return false, nil, fmt.Errorf("read the fleet: %w", err)
	}
	for name, r := range live {
		if e := r.SiteErrors[domain]; e != "" {
			if failures == nil {
				failures = map[string]string{}
			}
			failures[name] = e
		}
	}
	return Progress(live, domain, rev).Done, failures, nil
}
