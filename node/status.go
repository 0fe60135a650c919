package node

import (
	"sync"
	"time"
)

// Status is what a node reports about itself.
type Status struct {
	// Applied is true once nginx serves an applied state (from etcd or the
	// cache).
	Applied bool
	// AppliedRevision is the state revision nginx serves.
	AppliedRevision int64
	// AppliedAt is when that revision went live.
	AppliedAt time.Time
	// DesiredRevision is the revision of the latest state read from etcd.
	DesiredRevision int64
	// FromCache is true while the applied state came from the local cache
	// and has not been confirmed by etcd since the node started.
	FromCache bool
	// EtcdReachable is false while the node cannot read etcd.
	EtcdReachable bool
	// StaleSince is when etcd became unreachable; zero while it is reachable.
	StaleSince time.Time
	// Sites is the number of sites applied.
	Sites int
	// SiteErrors holds, per domain, why a site's latest desired state could
	// not be applied; such a site keeps serving its last good state.
	SiteErrors map[string]string
	// LastError is why the latest pass failed, "" once a pass succeeded.
	LastError   string
	LastErrorAt time.Time
	// PendingImport is set while a multi-transaction import holds the state.
	PendingImport bool
}

// Stale reports whether the node serves a state it could not confirm
// against etcd.
func (s Status) Stale() bool { return !s.EtcdReachable || s.FromCache }

// statusBox guards a Status shared by the reconciler and readers.
type statusBox struct {
	mu sync.Mutex
	s  Status
}

func (b *statusBox) get() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.s
	if s.SiteErrors != nil {
		m := make(map[string]string, len(s.SiteErrors))
		for k, v := range s.SiteErrors {
			m[k] = v
		}
		s.SiteErrors = m
	}
	return s
}

func (b *statusBox) update(f func(*Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.s)
}

// etcdDown records that etcd could not be reached, keeping the first time.
func (b *statusBox) etcdDown(now time.Time) (changed bool) {
	b.update(func(s *Status) {
		if s.EtcdReachable || s.StaleSince.IsZero() {
			changed = s.EtcdReachable || s.StaleSince.IsZero()
			s.EtcdReachable = false
			s.StaleSince = now
		}
	})
	return changed
}

// etcdUp records that etcd answered; it reports whether it had not before.
func (b *statusBox) etcdUp() (recovered bool) {
	b.update(func(s *Status) {
		recovered = !s.EtcdReachable
		s.EtcdReachable = true
		s.StaleSince = time.Time{}
	})
	return recovered
}

func (b *statusBox) fail(err error, now time.Time) {
	b.update(func(s *Status) {
		s.LastError = err.Error()
		s.LastErrorAt = now
	})
}
