package node

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// Overlayer builds a release that serves one release's files and, under
// the paths keep admits, the files of earlier releases it lacks
// (deploy.Store.Overlay). A BundleStore that is one serves a site's
// old assets for the window its keepAssets option names.
type Overlayer interface {
	Overlay(ctx context.Context, current string, earlier []string, keep func(path string) bool) (string, error)
}

// assets keeps the overlays of the sites with keepAssets. It is owned by
// the worker goroutine.
type assets struct {
	// built maps what an overlay was built from to its digest.
	built map[string]string
	// inUse are the overlays the last plan served; the next plan's replace
	// them.
	inUse, nextInUse map[string]bool
	// wake is the earliest time an earlier release leaves a window.
	wake time.Time
	// timer triggers the pass at wake and sets due, which makes the pass
	// run even though the state did not change.
	timer *time.Timer
	due   atomic.Bool
}

// servedBundle returns the digest of the release to serve for s: its
// deployment, or for a site with keepAssets an overlay of it with the
// earlier releases still inside the window. An overlay that cannot be
// built falls back to the deployment (and is logged).
func (n *Node) servedBundle(ctx context.Context, s state.Site, now time.Time) string {
	if s.Deployment == nil {
		return ""
	}
	current := s.Deployment.SHA256
	keep := s.Options.KeepAssets
	ov, ok := n.opts.Bundles.(Overlayer)
	if keep == nil || !ok || !n.opts.Bundles.Has(current) {
		return current
	}
	window := time.Duration(keep.WindowSeconds) * time.Second
	replacedAt := s.Deployment.DeployedAt
	var earlier []string
	for _, d := range s.History {
		if until := replacedAt.Add(window); now.Before(until) && d.SHA256 != current {
			earlier = append(earlier, d.SHA256)
			if n.assets.wake.IsZero() || until.Before(n.assets.wake) {
				n.assets.wake = until
			}
		}
		replacedAt = d.DeployedAt
	}
	if len(earlier) == 0 {
		return current
	}
	key := current + "|" + strings.Join(earlier, ",") + "|" + strings.Join(keep.Paths, ",")
	digest, ok := n.assets.built[key]
	if !ok || !n.opts.Bundles.Has(digest) {
		var err error
		digest, err = ov.Overlay(ctx, current, earlier, keep.Keeps)
		if err != nil {
			n.log.Warn("could not keep the site's old assets; serving its deployment alone", "site", s.Domain, "err", err)
			return current
		}
		if n.assets.built == nil {
			n.assets.built = map[string]string{}
		}
		n.assets.built[key] = digest
	}
	if n.assets.nextInUse == nil {
		n.assets.nextInUse = map[string]bool{}
	}
	n.assets.nextInUse[digest] = true
	return digest
}

// planned ends a plan: its overlays are the ones in use, and a pass is
// due when the first earlier release leaves its window.
func (n *Node) assetsPlanned() {
	n.assets.inUse, n.assets.nextInUse = n.assets.nextInUse, nil
	for key, digest := range n.assets.built {
		if !n.assets.inUse[digest] {
			delete(n.assets.built, key)
		}
	}
	if wake := n.assets.wake; !wake.IsZero() {
		d := time.Until(wake) + 10*time.Millisecond
		if n.assets.timer == nil {
			n.assets.timer = time.AfterFunc(d, func() {
				n.assets.due.Store(true)
				n.Trigger()
			})
		} else {
			n.assets.timer.Reset(d)
		}
	}
	n.assets.wake = time.Time{}
}

// stopAssets stops the window timer.
func (n *Node) stopAssets() {
	if n.assets.timer != nil {
		n.assets.timer.Stop()
	}
}
