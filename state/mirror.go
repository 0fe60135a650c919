package state

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
)

// ErrMirrorNotSynced is returned by Mirror.Snapshot while the mirror has no
// copy of the state it knows to be current: before its first read, and
// from a failed watch until a fresh read succeeds.
var ErrMirrorNotSynced = Errorf(Unavailable, "state: the local copy of the state is not in sync with etcd")

// Mirror keeps an in-memory copy of the desired state, read once and then
// kept current by a watch, so that a reader gets a Snapshot without
// reading and decoding every record from etcd: a change costs the
// records it touches. A failed or closed watch (etcd gone, history
// compacted) is followed by a fresh full read. It is safe for concurrent
// use; Run must be running for it to sync.
type Mirror struct {
	store *Store
	log   *slog.Logger

	mu         sync.Mutex
	synced     bool
	rev        int64  // etcd revision the copy is at
	stateRev   int64  // the meta key's mod revision
	changedAt  int64  // etcd revision of the last change to the copy
	sites      []Site // sorted by domain
	shared     bool   // sites was handed out in a snapshot: copy before changing it
	unreadable map[string]string
	bad        map[string]string      // BadRecords
	bundles    map[string]Bundle      // by key
	certs      map[string]Certificate // by key
	// The sorted lists of bundles and certificates the last snapshot got;
	// nil once either changed. A change to a site does not sort them again.
	bundleList []Bundle
	certList   []Certificate
	dh         *DHParams
	pending    string
	built      *Snapshot     // the last Snapshot built, until the next change
	changed    chan struct{} // closed at the next change
	resync     chan struct{}
}

// NewMirror returns a Mirror of store's state. It reads nothing until Run.
func NewMirror(store *Store, log *slog.Logger) *Mirror {
	if log == nil {
		log = slog.Default()
	}
	return &Mirror{store: store, log: log, changed: make(chan struct{}), resync: make(chan struct{}, 1)}
}

// Run reads the state and follows its changes until ctx ends; it returns
// nil then. Failures are retried with backoff and never end it.
func (m *Mirror) Run(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		if err := m.load(ctx); err != nil {
			m.setSynced(false)
			if ctx.Err() == nil {
				m.log.Debug("state mirror: read failed; retrying", "err", err, "in", delay)
			}
			if !ctxutil.Sleep(ctx, delay) {
				return nil
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		m.follow(ctx)
		m.setSynced(false)
	}
	return nil
}

// Resync asks Run for a fresh full read, e.g. when a probe shows the state
// moved past the copy while the watch stayed silent. It never blocks.
func (m *Mirror) Resync() {
	select {
	case m.resync <- struct{}{}:
	default:
	}
}

// Revision returns the state revision of the copy (0 before its first
// read).
func (m *Mirror) Revision() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stateRev
}

// Snapshot returns the current copy, or ErrMirrorNotSynced. The snapshot
// is shared: callers must not modify it.
func (m *Mirror) Snapshot(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.synced {
		return nil, ErrMirrorNotSynced
	}
	if m.built == nil {
		m.built = m.build()
	}
	return m.built, nil
}

// Changed returns a channel that is closed at the next change of the copy
// (including a loss or return of sync).
func (m *Mirror) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// LastChange reads the revision of the latest state change from etcd (a
// probe of etcd and of changes the watch missed); see Store.LastChange.
func (m *Mirror) LastChange(ctx context.Context) (int64, error) {
	return m.store.LastChange(ctx)
}

// load replaces the copy with a full read.
func (m *Mirror) load(ctx context.Context) error {
	snap, rev, err := m.store.snapshotAt(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev, m.stateRev, m.pending, m.dh = rev, snap.Revision, snap.PendingImport, snap.DHParams
	m.changedAt = rev
	m.sites, m.shared = slices.Clone(snap.Sites), false
	slices.SortFunc(m.sites, ByDomain)
	m.unreadable = map[string]string{}
	for d, e := range snap.Unreadable {
		m.unreadable[d] = e
	}
	m.bad = map[string]string{}
	for k, e := range snap.BadRecords {
		m.bad[k] = e
	}
	m.bundles = map[string]Bundle{}
	for _, b := range snap.Bundles {
		m.bundles[m.store.keys.Bundle(b.App, b.Version)] = b
	}
	m.certs = map[string]Certificate{}
	for _, c := range snap.Certificates {
		m.certs[m.store.keys.Cert(c.ID)] = c
	}
	m.bundleList, m.certList = nil, nil
	m.synced = true
	m.changedLocked()
	return nil
}

// follow applies watched changes until the watch fails, a resync is asked
// for, or ctx ends.
func (m *Mirror) follow(ctx context.Context) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	from := m.rev + 1
	m.mu.Unlock()
	ch := m.store.cli.Watch(clientv3.WithRequireLeader(wctx), m.store.keys.State(),
		clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify())
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.resync:
			return
		case resp, ok := <-ch:
			if !ok || resp.Err() != nil {
				if ctx.Err() == nil {
					m.log.Debug("state mirror: watch ended; reading the state again", "err", resp.Err())
				}
				return
			}
			m.apply(resp.Events, resp.Header.Revision)
		}
	}
}

// apply applies watch events at revision rev.
func (m *Mirror) apply(events []*clientv3.Event, rev int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range events {
		m.applyOne(ev.Kv, ev.Type == mvccpb.DELETE)
	}
	m.rev = max(m.rev, rev)
	if len(events) > 0 {
		m.changedAt = rev
		m.changedLocked()
	}
}

// applyOne applies the put or delete of one key. A record that does not
// decode is left out and noted, as Store.Snapshot does.
func (m *Mirror) applyOne(kv *mvccpb.KeyValue, deleted bool) {
	k := m.store.keys
	key := string(kv.Key)
	delete(m.bad, key)
	switch {
	case strings.HasPrefix(key, k.Sites()):
		domain := strings.TrimPrefix(key, k.Sites())
		m.removeSite(domain)
		delete(m.unreadable, domain)
		if deleted {
			return
		}
		site, err := decodeSiteKey(kv, domain)
		if err != nil {
			m.unreadable[domain] = err.Error()
			return
		}
		m.addSite(site)
	case strings.HasPrefix(key, k.Apps()):
		m.bundleList = nil
		m.noteBad(key, applyDecoded(m.bundles, key, kv, deleted, decodeBundle))
	case strings.HasPrefix(key, k.Certs()):
		m.certList = nil
		m.noteBad(key, applyDecoded(m.certs, key, kv, deleted, decodeCert))
	case key == k.DHParams():
		m.dh = nil
		if !deleted {
			dh, err := decodeDHParams(kv)
			m.dh = dh
			m.noteBad(key, err)
		}
	case key == k.Meta():
		m.stateRev = 0
		if !deleted {
			m.stateRev = kv.ModRevision
		}
	case key == k.Pending():
		m.pending = ""
		if !deleted {
			m.pending = string(kv.Value)
		}
	}
}

// noteBad records that the record at key does not decode (err not nil).
func (m *Mirror) noteBad(key string, err error) {
	if err != nil {
		m.bad[key] = err.Error()
	}
}

// addSite records a site and keeps the sites sorted: a binary search and
// at most one move of the slice, no sort.
func (m *Mirror) addSite(s Site) {
	m.own()
	i, found := slices.BinarySearchFunc(m.sites, s.Domain, siteDomainCmp)
	if found {
		m.sites[i] = s
		return
	}
	m.sites = slices.Insert(m.sites, i, s)
}

// removeSite forgets a site, if it is known.
func (m *Mirror) removeSite(domain string) {
	if i, found := slices.BinarySearchFunc(m.sites, domain, siteDomainCmp); found {
		m.own()
		m.sites = slices.Delete(m.sites, i, i+1)
	}
}

// own copies the sites if a snapshot holds them, so that snapshots never
// change: a change after a snapshot costs one copy, further ones none.
func (m *Mirror) own() {
	if m.shared {
		m.sites, m.shared = slices.Grow(slices.Clone(m.sites), 16), false
	}
}

// applyDecoded puts or deletes one decoded record of a map; a record that
// does not decode is removed from it and its error returned.
func applyDecoded[T any](into map[string]T, key string, kv *mvccpb.KeyValue, deleted bool, decode func(*mvccpb.KeyValue) (T, error)) error {
	delete(into, key)
	if deleted {
		return nil
	}
	v, err := decode(kv)
	if err != nil {
		return err
	}
	into[key] = v
	return nil
}

// build makes a Snapshot of the copy, sorted as Store.Snapshot sorts it.
func (m *Mirror) build() *Snapshot {
	// The sorted sites themselves: the next change copies them (own).
	snap := &Snapshot{Revision: m.stateRev, Changed: m.changedAt, PendingImport: m.pending, DHParams: m.dh, Sites: slices.Clip(m.sites)}
	m.shared = true
	if len(m.unreadable) > 0 {
		snap.Unreadable = maps.Clone(m.unreadable)
	}
	if len(m.bad) > 0 {
		snap.BadRecords = maps.Clone(m.bad)
	}
	if m.bundleList == nil {
		m.bundleList = slices.Collect(maps.Values(m.bundles))
		sortBundles(m.bundleList)
	}
	if m.certList == nil {
		m.certList = slices.SortedFunc(maps.Values(m.certs), func(a, b Certificate) int { return cmp.Compare(a.ID, b.ID) })
	}
	snap.Bundles, snap.Certificates = slices.Clip(m.bundleList), slices.Clip(m.certList)
	return snap
}

func (m *Mirror) setSynced(v bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.synced != v {
		m.synced = v
		m.changedLocked()
	}
}

// changedLocked drops the built snapshot and wakes the waiters.
func (m *Mirror) changedLocked() {
	m.built = nil
	close(m.changed)
	m.changed = make(chan struct{})
}

// IsNotSynced reports whether err is ErrMirrorNotSynced.
func IsNotSynced(err error) bool { return errors.Is(err, ErrMirrorNotSynced) }
