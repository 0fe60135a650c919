package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/state"
)

// View is the fleet as etcd shows it at one revision.
type View struct {
	// Revision is the etcd revision of the read.
	Revision int64
	// StateRevision is the revision of the last change to the desired
	// state; a node whose applied revision is lower has drifted.
	StateRevision int64
	// StateChangedAt is when that change was made.
	StateChangedAt time.Time
	// Leader is the name of the leading node, "" if none.
	Leader string
	// Nodes are the live nodes and, with Live false, nodes seen before that
	// are gone, sorted by name.
	Nodes []ViewNode
}

// ViewNode is one node in a View.
type ViewNode struct {
	NodeRecord
	// Live is true while the node holds its lease.
	Live bool
	// LastSeen is when the node was last known live: the time of the read
	// for a live node (its lease is its heartbeat), else when the leader
	// found it gone (or its last record, before the leader noticed).
	LastSeen time.Time
}

// Drifted reports whether the node serves a state older than the desired one.
func (v View) Drifted(n ViewNode) bool { return n.AppliedRevision < v.StateRevision }

// ReadView reads the fleet's live records, last-seen records, leader and
// last state change in one read-only transaction.
func ReadView(ctx context.Context, cli *clientv3.Client, keys state.Keys) (View, error) {
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(keys.Nodes(), clientv3.WithPrefix()),
		clientv3.OpGet(keys.Members(), clientv3.WithPrefix()),
		clientv3.OpGet(keys.Leader(), clientv3.WithFirstCreate()...),
		clientv3.OpGet(keys.Meta()),
	).Commit()
	if err != nil {
		return View{}, fmt.Errorf("read cluster view: %w", err)
	}
	v := View{Revision: resp.Header.Revision}
	byName := map[string]ViewNode{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var r NodeRecord
		if json.Unmarshal(kv.Value, &r) == nil {
			r.Leader = false
			byName[r.Name] = ViewNode{NodeRecord: r}
		}
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var r NodeRecord
		if json.Unmarshal(kv.Value, &r) == nil {
			byName[r.Name] = ViewNode{NodeRecord: r, Live: true}
		}
	}
	if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
		v.Leader = string(kvs[0].Value)
	}
	if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) > 0 {
		v.StateRevision, v.StateChangedAt = kvs[0].ModRevision, state.MetaTime(kvs[0].Value)
	}
	now := time.Now().UTC()
	for _, n := range byName {
		n.Leader = n.Live && n.Name == v.Leader
		switch {
		case n.Live:
			n.LastSeen = now
		case n.GoneAt != nil:
			n.LastSeen = *n.GoneAt
		default:
			n.LastSeen = n.UpdatedAt
		}
		v.Nodes = append(v.Nodes, n)
	}
	slices.SortFunc(v.Nodes, func(a, b ViewNode) int { return strings.Compare(a.Name, b.Name) })
	return v, nil
}

// StaleMemberCleaner returns the leader task that, every interval, marks
// the last-seen record of each node it finds gone with the time (one write
// per departure), and removes those gone for longer than retention.
func StaleMemberCleaner(cli *clientv3.Client, keys state.Keys, retention, interval time.Duration, timeout time.Duration) LeaderTask {
	return func(ctx context.Context, f Fence) error {
		for {
			if err := cleanMembers(ctx, cli, keys, retention, timeout, f); err != nil {
				return err
			}
			if !ctxutil.Sleep(ctx, interval) {
				return nil
			}
		}
	}
}

func cleanMembers(ctx context.Context, cli *clientv3.Client, keys state.Keys, retention, timeout time.Duration, f Fence) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cli.Txn(rctx).Then(
		clientv3.OpGet(keys.Members(), clientv3.WithPrefix()),
		clientv3.OpGet(keys.Nodes(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return fmt.Errorf("list members: %w", err)
	}
	live := map[string]bool{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		live[strings.TrimPrefix(string(kv.Key), keys.Nodes())] = true
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		name := strings.TrimPrefix(string(kv.Key), keys.Members())
		var r NodeRecord
		_ = json.Unmarshal(kv.Value, &r)
		if live[name] {
			continue
		}
		guard := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(keys.Nodes()+name), "=", 0),
		}
		var op clientv3.Op
		switch {
		case r.GoneAt == nil:
			// Found gone: the one write a departure costs, so that "last
			// seen" and the retention count from now.
			now := time.Now().UTC()
			r.GoneAt = &now
			b, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encode member %q: %w", name, err)
			}
			op = clientv3.OpPut(string(kv.Key), string(b))
		case time.Since(*r.GoneAt) >= retention:
			op = clientv3.OpDelete(string(kv.Key))
		default:
			continue
		}
		switch err := f.txn(rctx, guard, op); err {
		case nil, errGuardFailed:
		default:
			return fmt.Errorf("update stale member %q: %w", name, err)
		}
	}
	return nil
}
