// Package node is the reconciler: it watches the desired state in etcd and
// makes the local nginx serve it, keeping the last good state when anything
// fails, and serving from a local cache while etcd is unreachable.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
	"github.com/sitefleet/sitefleet/webserver"
)

// Defaults for Options.
const (
	DefaultQuiescence     = 20 * time.Millisecond
	DefaultResyncInterval = 5 * time.Minute
	DefaultProbeInterval  = time.Second
	DefaultPassTimeout    = 2 * time.Minute
	maxRetryDelay         = 5 * time.Second
	minRetryDelay         = 100 * time.Millisecond
)

// Source is what the reconciler needs of the state store (a
// state.Mirror).
type Source interface {
	// Snapshot returns the whole desired state at one revision; it fails
	// while the source cannot vouch that it is current.
	Snapshot(ctx context.Context) (*state.Snapshot, error)
	// Changed returns a channel closed at the next change of the state.
	Changed() <-chan struct{}
	// LastChange returns the revision of the latest change to the desired
	// state; it serves as a probe of etcd and of changes the source missed.
	LastChange(ctx context.Context) (int64, error)
}

// resyncer is implemented by a Source that keeps a copy of the state and
// can read everything again when a probe shows the copy fell behind.
type resyncer interface {
	// Revision is the state revision of the copy.
	Revision() int64
	Resync()
}

// WebServer is what the reconciler needs of the web server.
type WebServer interface {
	// Apply makes the web server serve plan, site by site: a site it
	// cannot serve in its desired form keeps its last served form and is
	// named in the result with the reason; the other sites are applied.
	Apply(ctx context.Context, plan webserver.Plan) (webserver.Result, error)
}

// Options configure a Node.
type Options struct {
	Source Source
	Web    WebServer
	// Cache is where the applied state is kept for starts without etcd.
	Cache state.Cache
	// HTTPListen is nginx's HTTP listen address.
	HTTPListen string
	// HTTPSListen is nginx's HTTPS listen address; "" serves no HTTPS.
	HTTPSListen string
	// Sealer opens certificate keys, which are written in clear into
	// TLSDir for nginx. Both are required with HTTPSListen.
	Sealer *sftls.Sealer
	TLSDir string
	// Resolvers are the DNS servers nginx asks for OCSP responders.
	Resolvers []string
	// ACMEUpstream is the node's address that nginx passes ACME HTTP-01
	// challenges to; "" answers them with 404.
	ACMEUpstream string
	// AuthUpstream is the node's address that nginx asks about requests
	// to protected sites (webserver.AuthPath); "" serves no protected
	// site. It should listen on loopback only.
	AuthUpstream string
	// KeyGroup, when positive, is the group nginx workers run as; it may
	// read the key files.
	KeyGroup int
	// Previews, when set, serves deploy previews.
	Previews *PreviewOptions
	// PlaceholderRoot is served by sites with nothing deployed.
	PlaceholderRoot string
	// Bundles is the local bundle store and Peers the way to fill it; with
	// either nil, deployed sites serve the placeholder.
	Bundles BundleStore
	Peers   BundlePeers
	// Quiescence is how long the state must be quiet before a pass runs;
	// bursts are delayed at most 4 times as long. Default DefaultQuiescence.
	Quiescence time.Duration
	// ResyncInterval forces a full pass now and then, whatever the watch
	// says. Default DefaultResyncInterval.
	ResyncInterval time.Duration
	// ProbeInterval is how often etcd's reachability is checked. Default
	// DefaultProbeInterval.
	ProbeInterval time.Duration
	// PassTimeout bounds one pass. Default DefaultPassTimeout.
	PassTimeout time.Duration
	// OnPass, if set, is called after each pass that applied a state or
	// failed to, with how long it took (for metrics). It must not block.
	OnPass func(took time.Duration, err error)
	// OnApplied, if set, is called as soon as the status records a newly
	// served state, before the cache is written (so that the fleet learns
	// it at once). It must not block.
	OnApplied func()
	Logger    *slog.Logger
}

// Node reconciles the local web server with the desired state.
type Node struct {
	opts     Options
	log      *slog.Logger
	wake     chan struct{}
	status   statusBox
	applied  atomic.Pointer[state.Snapshot] // written by the worker goroutine only
	aliasIdx atomic.Pointer[aliasIndex]     // SiteOf's, for one applied state
	// selfSignedPreviews is this node's own previews certificate, made
	// by the worker goroutine when first needed.
	selfSignedPreviews *state.Certificate
	previewsErr        string // the last previews settings error logged
	// Owned by the worker goroutine: the last pass's validations, in the
	// snapshot's order (checkedSorted: domain order), the list the next
	// pass refills, and the name owners usableSites updates.
	checked       []*checkedSite
	checkedNext   []*checkedSite
	checkedSites  []state.Site // the sites checked parallels
	checkedSorted bool
	owner         map[string]string // name -> site, as the last pass claimed them
	ownersClean   bool              // owner holds exactly the names of checked
	fetch         *fetcher          // nil without bundles
	// Owned by the worker goroutine: what the last plan's sites were built
	// from (planned, parallel to plannedSites), the list the next pass
	// refills, and the certificates and DH parameters they were built with.
	planned      []plannedSite
	plannedNext  []plannedSite
	plannedSites []webserver.Site
	plannedCerts []state.Certificate
	plannedDH    string

	// Owned by the worker goroutine.
	waitingForBundles bool                   // the last apply lacked a bundle
	rules             map[string]cachedRules // bundle sha -> its serving rules
	logins            logins                 // bundle sha -> its Basic-Auth blocks
	unusedSince       map[string]time.Time   // local bundles nothing uses, since when
	lastBundleGC      time.Time              // when removeUnused last looked
	lastPrune         time.Time              // when pruneObjects last ran
	tls               *tlsFiles              // nil without HTTPS
	assets            assets                 // overlays of sites with keepAssets

	cache cacheWriter
}

// New returns a Node. It starts nothing.
func New(opts Options) (*Node, error) {
	if opts.Source == nil || opts.Web == nil {
		return nil, errors.New("node: Source and Web are required")
	}
	if opts.Quiescence <= 0 {
		opts.Quiescence = DefaultQuiescence
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.PassTimeout <= 0 {
		opts.PassTimeout = DefaultPassTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	n := &Node{opts: opts, log: opts.Logger, wake: make(chan struct{}, 1), unusedSince: map[string]time.Time{}, rules: map[string]cachedRules{}, lastPrune: time.Now(),
		cache: cacheWriter{cache: opts.Cache, log: opts.Logger, wake: make(chan struct{}, 1)}}
	if opts.Bundles != nil && opts.Peers != nil {
		n.fetch = newFetcher(n)
	}
	if opts.HTTPSListen != "" {
		if opts.Sealer == nil || opts.TLSDir == "" {
			return nil, errors.New("node: HTTPS needs a Sealer and a TLSDir")
		}
		n.tls = &tlsFiles{dir: opts.TLSDir, sealer: opts.Sealer, gid: opts.KeyGroup, log: opts.Logger, written: map[string]webserver.CertFiles{}}
	}
	return n, nil
}

// Status returns a copy of the node's current status.
func (n *Node) Status() Status { return n.status.get() }

// AppliedCertificates returns the certificate records of the state nginx
// serves (keys sealed); nil before the first pass.
func (n *Node) AppliedCertificates() []state.Certificate {
	if a := n.applied.Load(); a != nil {
		return a.Certificates
	}
	return nil
}

// SiteOf returns the primary domain of the site nginx serves host for, in
// the applied state, and whether host is one of its previews. A primary
// domain is found by binary search; an alias or preview through an index,
// built at the first such host looked up in each applied state (a site
// change costs it only if traffic asks).
func (n *Node) SiteOf(host string) (site string, preview, ok bool) {
	a := n.applied.Load()
	if a == nil {
		return "", false, false
	}
	if s, ok := a.Site(host); ok {
		return s.Domain, false, true
	}
	idx := n.aliasIdx.Load()
	if idx == nil || idx.of != a {
		idx = &aliasIndex{of: a, sites: map[string]string{}, previews: map[string]string{}}
		for _, s := range a.Sites {
			for _, alias := range s.Aliases {
				idx.sites[alias] = s.Domain
			}
			for _, p := range s.Previews {
				idx.previews[p.Host] = s.Domain
			}
		}
		n.aliasIdx.Store(idx)
	}
	if d, ok := idx.sites[host]; ok {
		return d, false, true
	}
	d, ok := idx.previews[host]
	return d, ok, ok
}

// aliasIndex maps the aliases and preview hosts of one applied state to
// their sites.
type aliasIndex struct {
	of       *state.Snapshot
	sites    map[string]string
	previews map[string]string
}

// Trigger asks for a pass soon; bursts of triggers coalesce into one.
func (n *Node) Trigger() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run serves the cached state if there is one, then keeps the web server in
// line with etcd until ctx ends. It returns nil when ctx ends; errors along
// the way are logged, shown in the status and retried, never fatal.
func (n *Node) Run(ctx context.Context) error {
	n.loadCache(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.cache.run(ctx) })
	wg.Go(func() { n.watchLoop(ctx) })
	wg.Go(func() { n.probeLoop(ctx) })
	if n.fetch != nil {
		wg.Go(func() { n.fetch.run(ctx) })
		wg.Go(func() { n.fetch.announceLocal(ctx) })
	}
	n.worker(ctx)
	n.stopAssets()
	wg.Wait()
	return nil
}

// loadCache applies the cached state, so a node started while etcd is
// unreachable serves at once.
func (n *Node) loadCache(ctx context.Context) {
	snap, appliedAt, err := n.opts.Cache.Load()
	if err != nil {
		if !state.IsNotExist(err) {
			n.log.Warn("state cache unusable; waiting for etcd", "err", err)
		}
		return
	}
	if err := n.apply(ctx, snap); err != nil {
		n.log.Error("serve cached state", "rev", snap.Revision, "err", err)
		n.status.fail(err, time.Now())
		return
	}
	n.status.update(func(s *Status) { s.FromCache = true; s.AppliedAt = appliedAt })
	n.log.Info("serving cached state", "rev", snap.Revision, "sites", len(snap.Sites), "appliedAt", appliedAt)
}

// watchLoop turns state changes into triggers until ctx ends.
func (n *Node) watchLoop(ctx context.Context) {
	for {
		ch := n.opts.Source.Changed()
		n.Trigger()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// probeLoop checks etcd's reachability, so that the status turns stale
// while nothing changes, and a pass follows as soon as etcd is back. It also
// triggers a pass when the state changed after the last snapshot the node
// read, so a change is applied within a probe interval even if the watch
// missed it.
func (n *Node) probeLoop(ctx context.Context) {
	behind := 0 // probes in a row that found the copy of the state behind etcd
	t := time.NewTicker(n.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last, err := n.opts.Source.LastChange(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if n.status.etcdDown(time.Now()) {
				n.log.Warn("etcd unreachable; serving the last applied state", "err", err)
			}
		case n.status.etcdUp():
			n.log.Info("etcd reachable again; catching up")
			n.Trigger()
		case last > n.status.get().DesiredRevision:
			n.log.Debug("state changed since the last snapshot", "rev", last)
			n.Trigger()
		}
		// A copy still behind etcd one probe later missed a change.
		if r, ok := n.opts.Source.(resyncer); ok && err == nil && last > r.Revision() {
			if behind++; behind >= 2 {
				n.log.Info("the state copy fell behind etcd; reading it again", "rev", last, "copy", r.Revision())
				r.Resync()
				behind = 0
			}
		} else {
			behind = 0
		}
	}
}

// cacheWriter writes the latest applied state to the cache file in the
// background: encoding 100,000 sites takes longer than applying a change,
// and the next pass must not wait for it. Bursts coalesce into one write
// of the latest state (see cacheMaxGap); the last one is written when the
// node stops.
type cacheWriter struct {
	cache state.Cache
	log   *slog.Logger
	wake  chan struct{}
	mu    sync.Mutex
	snap  *state.Snapshot
	at    time.Time
}

// put hands the writer the latest applied state; it never blocks.
func (c *cacheWriter) put(snap *state.Snapshot, at time.Time) {
	c.mu.Lock()
	c.snap, c.at = snap, at
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// cacheMaxGap bounds the spacing of cache writes: after a write, the next
// one waits as long as that one took (each encodes the whole state), so
// writing takes at most about half of a core whatever the fleet's size,
// and a change to a small fleet is written at once.
const cacheMaxGap = time.Second

// run writes what put handed it until ctx ends, then writes what is left.
func (c *cacheWriter) run(ctx context.Context) {
	var next time.Time
	for {
		select {
		case <-ctx.Done():
			c.flush()
			return
		case <-c.wake:
		}
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				c.flush()
				return
			case <-t.C:
			}
		}
		start := time.Now()
		c.flush()
		next = time.Now().Add(min(time.Since(start), cacheMaxGap))
	}
}

func (c *cacheWriter) flush() {
	c.mu.Lock()
	snap, at := c.snap, c.at
	c.snap = nil
	c.mu.Unlock()
	if snap == nil {
		return
	}
	if err := c.cache.Save(snap, at); err != nil {
		c.log.Warn("could not cache the applied state", "err", err)
	}
}

// recoverPass turns a panic in a pass into an error.
func recoverPass(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("reconcile pass panicked: %v", r)
	}
}
