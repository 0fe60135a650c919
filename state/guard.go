package state

import clientv3 "go.etcd.io/etcd/client/v3"

// Guard is a condition a write must meet besides its own: a leader's
// fence, which fails the write once the leadership it was made under has
// ended (ErrFenceLost). It is opaque above this package; package cluster
// makes one from its fence (Fence.Guard).
type Guard struct{ cmp clientv3.Cmp }

// GuardOf makes a Guard of an etcd comparison.
func GuardOf(cmp clientv3.Cmp) Guard { return Guard{cmp: cmp} }
