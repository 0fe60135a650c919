package cluster

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/state"
)

// errGuardFailed is returned by a fenced write whose own compares failed
// while the leadership still held.
var errGuardFailed = errors.New("cluster: write guard failed")

// Fence guards leader-only writes with the leader key's revision. An etcd
// lease alone does not guarantee exclusion: a leader that was partitioned
// can still send a write after its lease expired and another node took
// over. A write fenced with Fence succeeds only while the key this node
// created to win the election still exists with the same create revision.
type Fence struct {
	cli *clientv3.Client
	// Key is this node's election key; Rev its create revision.
	Key string
	Rev int64
}

// cmp is the compare that holds only while this leadership lasts.
func (f Fence) cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Rev)
}

// Guard is the fence as the state store's writes take it: the one way
// leader work outside this package fences a write. A write under a lost
// leadership fails with state.ErrFenceLost.
func (f Fence) Guard() state.Guard { return state.GuardOf(f.cmp()) }

// txn commits ops to this package's own records if the leadership holds
// and cmps hold. It returns state.ErrFenceLost when the leadership is gone
// and errGuardFailed when cmps
// failed; nothing is written in either case. The inner transaction keeps
// the two apart.
func (f Fence) txn(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) error {
	inner := clientv3.OpTxn(cmps, ops, nil)
	resp, err := f.cli.Txn(ctx).If(f.cmp()).Then(inner).Commit()
	if err != nil {
		return fmt.Errorf("fenced write: %w", err)
	}
	if !resp.Succeeded {
		return state.ErrFenceLost
	}
	if !resp.Responses[0].GetResponseTxn().Succeeded {
		return errGuardFailed
	}
	return nil
}
