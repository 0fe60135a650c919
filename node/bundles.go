package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sitefleet/sitefleet/deploy/manifest"
	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/state"
)

// BundleStore is what the reconciler needs of the local bundle store: to
// serve the bundles it holds, and to remove those nothing uses.
type BundleStore interface {
	BundleReader
	BundleRemover
}

// BundleReader finds a bundle's files.
type BundleReader interface {
	Has(sha string) bool
	Root(sha string) string
}

// BundleRemover lists the bundles held and removes one.
type BundleRemover interface {
	List() ([]string, error)
	Remove(sha string) error
}

// BundlePeers fetches bundles this node lacks and records which it holds.
type BundlePeers interface {
	// Fetch copies bundle sha from a node that holds it into the local
	// store, verifying its hash and unpacking it safely.
	Fetch(ctx context.Context, sha string) error
	// Announce records in etcd that this node holds sha; Withdraw that it
	// no longer does.
	Announce(ctx context.Context, sha string) error
	Withdraw(ctx context.Context, sha string) error
}

// Fetch tuning.
const (
	fetchParallelism = 4
	fetchMinBackoff  = 500 * time.Millisecond
	fetchMaxBackoff  = 30 * time.Second
)

// fetcher makes every bundle of the desired state present on this node,
// fetching missing ones from peers with bounded parallelism and a backoff
// per bundle, and triggers a pass whenever one arrives.
type fetcher struct {
	n       *Node
	wake    chan struct{}
	mu      sync.Mutex
	want    []state.Bundle
	retryAt map[string]time.Time
	backoff map[string]time.Duration
	running map[string]bool
	errs    map[string]string
}

func newFetcher(n *Node) *fetcher {
	return &fetcher{n: n, wake: make(chan struct{}, 1), retryAt: map[string]time.Time{}, backoff: map[string]time.Duration{}, running: map[string]bool{}, errs: map[string]string{}}
}

// want sets the bundles the desired state lists.
func (f *fetcher) setWant(bs []state.Bundle) {
	f.mu.Lock()
	f.want = bs
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// lastError returns why the latest fetch of sha failed, if it did.
func (f *fetcher) lastError(sha string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errs[sha]
}

// run starts fetches until ctx ends.
func (f *fetcher) run(ctx context.Context) {
	sem := make(chan struct{}, fetchParallelism)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for _, b := range f.due() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				f.fetch(ctx, b)
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-tick.C:
		}
	}
}

// due returns the wanted bundles that are missing, not being fetched and
// not waiting for a retry, marking them running.
func (f *fetcher) due() []state.Bundle {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []state.Bundle
	now := time.Now()
	for _, b := range f.want {
		if f.running[b.SHA256] || now.Before(f.retryAt[b.SHA256]) || f.n.opts.Bundles.Has(b.SHA256) {
			continue
		}
		f.running[b.SHA256] = true
		out = append(out, b)
	}
	return out
}

func (f *fetcher) fetch(ctx context.Context, b state.Bundle) {
	start := time.Now()
	err := f.fetchOnce(ctx, b)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.running, b.SHA256)
	if err == nil {
		delete(f.errs, b.SHA256)
		delete(f.backoff, b.SHA256)
		delete(f.retryAt, b.SHA256)
		f.n.log.Info("fetched bundle", "bundle", b.Ref(), "sha256", b.SHA256, "took", time.Since(start))
		f.n.Trigger()
		return
	}
	if ctx.Err() != nil {
		return
	}
	d := max(fetchMinBackoff, min(2*f.backoff[b.SHA256], fetchMaxBackoff))
	f.backoff[b.SHA256], f.retryAt[b.SHA256] = d, time.Now().Add(d)
	f.errs[b.SHA256] = err.Error()
	f.n.log.Warn("could not fetch bundle; retrying", "bundle", b.Ref(), "retryIn", d, "err", err)
}

// fetchOnce copies the bundle from a peer and records that this node
// holds it.
func (f *fetcher) fetchOnce(ctx context.Context, b state.Bundle) error {
	if err := f.n.opts.Peers.Fetch(ctx, b.SHA256); err != nil {
		return fmt.Errorf("fetch %s: %w", b.Ref(), err)
	}
	if err := f.n.opts.Peers.Announce(ctx, b.SHA256); err != nil {
		f.n.log.Warn("could not record that this node holds a bundle", "bundle", b.Ref(), "err", err)
	}
	return nil
}

// announceLocal records, once etcd answers, that this node holds every
// bundle it has on disk, so peers can fetch from it after a restart.
func (f *fetcher) announceLocal(ctx context.Context) {
	shas, err := f.n.opts.Bundles.List()
	if err != nil {
		f.n.log.Warn("could not list local bundles", "err", err)
		return
	}
	for _, sha := range shas {
		for ctx.Err() == nil {
			if err := f.n.opts.Peers.Announce(ctx, sha); err == nil {
				break
			}
			ctxutil.Sleep(ctx, 2*time.Second)
		}
	}
}

// CheckTree refuses an unpacked bundle whose _redirects or _headers has a
// line that is malformed, unsupported or unsafe to serve, naming the file
// and line: what the upload checks before it records a bundle.
func CheckTree(root string) error {
	m, err := manifest.Load(root, manifest.DefaultLimits())
	if err != nil {
		return err
	}
	return ToRules(m).Check()
}
