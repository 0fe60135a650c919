package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"time"

	"github.com/sitefleet/sitefleet/state"
	"github.com/sitefleet/sitefleet/webserver"
)

// worker runs passes one at a time until ctx ends. A wake-up starts a
// quiescence timer: the pass runs once the state has been quiet for
// Quiescence, or at the latest 4 x Quiescence after the first wake-up.
// A failed pass is retried with backoff; the periodic resync runs a pass
// whatever happened.
func (n *Node) worker(ctx context.Context) {
	resync := time.NewTicker(n.opts.ResyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	delay := minRetryDelay
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
			if !n.quiesce(ctx) {
				return
			}
		case <-retry.C:
		case <-resync.C:
		}
		err := n.pass(ctx)
		switch {
		case err == nil:
			delay = minRetryDelay
			retry.Stop()
		case errors.As(err, new(*webserver.TestError)):
			// Retrying the same config cannot help; the next change or
			// resync will try again.
			retry.Stop()
		default:
			retry.Reset(delay)
			delay = min(2*delay, maxRetryDelay)
		}
	}
}

// quiesce waits until no wake-up came for Quiescence, or 4 x Quiescence
// passed. It returns false if ctx ended.
func (n *Node) quiesce(ctx context.Context) bool {
	deadline := time.NewTimer(4 * n.opts.Quiescence)
	defer deadline.Stop()
	quiet := time.NewTimer(n.opts.Quiescence)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-quiet.C:
			return true
		case <-n.wake:
			quiet.Reset(n.opts.Quiescence)
		}
	}
}

// pass reads the latest snapshot and applies it. Its error is recorded in
// the status and logged here.
func (n *Node) pass(parent context.Context) (err error) {
	ctx, cancel := context.WithTimeout(parent, n.opts.PassTimeout)
	defer cancel()
	defer recoverPass(&err)
	start := time.Now()
	snap, err := n.opts.Source.Snapshot(ctx)
	if err != nil {
		if parent.Err() != nil {
			return err // shutting down
		}
		if state.IsNotSynced(err) {
			return err // the source is catching up; it triggers a pass when it has
		}
		if ctx.Err() == nil || state.IsUnavailable(err) {
			if n.status.etcdDown(time.Now()) {
				n.log.Warn("etcd unreachable; serving the last applied state", "err", err)
			}
		}
		return err
	}
	n.status.etcdUp()
	n.status.update(func(s *Status) { s.DesiredRevision = snap.Revision; s.PendingImport = snap.PendingImport != "" })
	if snap.PendingImport != "" {
		n.log.Info("an import is in progress; holding the applied state", "rev", snap.Revision)
		return nil
	}
	assetsDue := n.assets.due.Swap(false) // a site's old assets leave their window
	// A record written behind the API's back leaves the state revision
	// but not Changed.
	if a := n.applied.Load(); a != nil && a.Revision == snap.Revision && a.Changed == snap.Changed && !n.status.get().FromCache && !n.waitingForBundles && !assetsDue {
		n.log.Debug("state unchanged", "rev", snap.Revision)
		return nil
	}
	err = n.apply(ctx, snap)
	if n.opts.OnPass != nil && parent.Err() == nil {
		n.opts.OnPass(time.Since(start), err)
	}
	if err != nil {
		if parent.Err() != nil {
			return err // shutting down
		}
		n.log.Error("apply state", "rev", snap.Revision, "err", err)
		n.status.fail(err, time.Now())
		return err
	}
	n.status.update(func(s *Status) { s.FromCache = false })
	n.log.Info("applied state", "rev", snap.Revision, "sites", len(snap.Sites), "took", time.Since(start))
	return nil
}

// apply makes the web server serve snap, then records it as applied in the
// status and the cache.
func (n *Node) apply(ctx context.Context, snap *state.Snapshot) error {
	if n.fetch != nil {
		n.fetch.setWant(snap.Bundles)
	}
	if len(snap.BadRecords) > 0 {
		n.log.Warn("records in the store that do not decode are left out", "records", snap.BadRecords)
	}
	sites, siteErrs, changed := n.usableSites(snap)
	sites, siteErrs = n.resolveBundles(sites, siteErrs)
	plan := webserver.Plan{HTTPListen: n.opts.HTTPListen, PlaceholderRoot: n.opts.PlaceholderRoot, ACMEChallengeUpstream: n.opts.ACMEUpstream}
	siteErr := func(domain string, err error) {
		if siteErrs == nil {
			siteErrs = map[string]string{}
		}
		if prev := siteErrs[domain]; prev != "" {
			siteErrs[domain] = prev + "; " + err.Error()
			return
		}
		siteErrs[domain] = err.Error()
	}
	if n.tls != nil {
		dh, err := n.tls.dhParams(snap.DHParams)
		if err != nil {
			return fmt.Errorf("https: %w", err)
		}
		plan.HTTPSListen, plan.DHParams, plan.Resolvers = n.opts.HTTPSListen, dh, n.opts.Resolvers
	}
	plan.Sites = n.planSites(ctx, sites, snap.Certificates, plan.DHParams, siteErr)
	previews, err := n.previewsPlan(snap.Certificates)
	if msg := errText(err); msg != n.previewsErr { // once per change
		n.previewsErr = msg
		if err != nil {
			n.log.Warn("previews", "err", err)
		}
	}
	plan.Previews = previews
	plan.AuthUpstream = n.opts.AuthUpstream
	plan.Sites = n.withPreviews(plan.Sites, sites, siteErr)
	res, err := n.opts.Web.Apply(ctx, plan)
	if err != nil {
		return fmt.Errorf("apply web config for revision %d: %w", snap.Revision, err)
	}
	for domain, reason := range res.Rejected {
		siteErr(domain, errors.New(reason))
	}
	sites = n.keepServedForms(sites, res.Rejected)
	now := time.Now()
	applied := &state.Snapshot{Revision: snap.Revision, Changed: snap.Changed, Sites: sites, Certificates: snap.Certificates, DHParams: snap.DHParams}
	n.applied.Store(applied)
	n.status.update(func(s *Status) {
		s.Applied, s.AppliedRevision, s.AppliedAt, s.Sites = true, snap.Revision, now, len(sites)
		s.SiteErrors = siteErrs
		s.LastError, s.LastErrorAt = "", time.Time{}
	})
	if n.opts.OnApplied != nil {
		n.opts.OnApplied()
	}
	n.cache.put(applied, now)
	if n.tls != nil {
		if err := n.tls.applied(plan, len(snap.Certificates)); err != nil {
			n.log.Warn("could not remove old certificate files", "err", err)
		}
	}
	n.removeUnused(ctx, snap, applied)
	if changed >= bulkChange {
		// A pass over this many changes (a start, an import) used memory
		// the next ones will not need: give it back now rather than over
		// the minutes the runtime's scavenger takes.
		debug.FreeOSMemory()
	}
	return nil
}

// bulkChange is how many changed sites make a pass a bulk change.
const bulkChange = 5000

// plannedSite is what the web server's form of a site was built from,
// and the errors building it gave.
type plannedSite struct {
	rev    int64  // the site record's revision
	bundle string // the deployed bundle's digest, "" for none
	err    error
}

// planSites returns the web server's form of each site. The form of a
// site whose record and served bundle are those of the last pass is
// reused, as long as the certificates and DH parameters did not change
// either: a pass builds only the changed sites. Both lists are in domain
// order, so one walk pairs them; sites out of order are all built.
func (n *Node) planSites(ctx context.Context, sites []state.Site, records []state.Certificate, dh string, siteErr func(string, error)) []webserver.Site {
	var certs map[string]state.Certificate // by ID; made when a site is built
	reuse := slices.IsSortedFunc(sites, state.ByDomain) &&
		dh == n.plannedDH && slices.EqualFunc(records, n.plannedCerts, func(a, b state.Certificate) bool {
		return a.ID == b.ID && a.Revision == b.Revision && a.Revision != 0
	})
	prev, prevSites := n.planned, n.plannedSites
	next, out := n.plannedNext[:0], make([]webserver.Site, 0, len(sites))
	j := 0
	now := time.Now()
	defer n.assetsPlanned()
	for _, s := range sites {
		bundle := n.servedBundle(ctx, s, now)
		if reuse {
			for j < len(prev) && prevSites[j].Domain < s.Domain {
				j++
			}
			if j < len(prev) && prevSites[j].Domain == s.Domain && prev[j].rev == s.Revision && s.Revision != 0 && prev[j].bundle == bundle {
				if prev[j].err != nil {
					siteErr(s.Domain, prev[j].err)
				}
				next, out = append(next, prev[j]), append(out, prevSites[j])
				continue
			}
		}
		if certs == nil {
			certs = make(map[string]state.Certificate, len(records))
			for _, c := range records {
				certs[c.ID] = c
			}
		}
		ws, err := n.planSite(s, bundle, certs)
		if err != nil {
			siteErr(s.Domain, err)
		}
		next = append(next, plannedSite{rev: s.Revision, bundle: bundle, err: err})
		out = append(out, ws)
	}
	n.planned, n.plannedNext, n.plannedSites = next, prev, out
	n.plannedCerts, n.plannedDH = records, dh
	return out
}

// planSite builds the web server's form of one site, serving the release
// bundle (its deployment, or an overlay of it: see servedBundle).
func (n *Node) planSite(s state.Site, bundle string, certs map[string]state.Certificate) (webserver.Site, error) {
	var errs error
	add := func(err error) {
		if errs == nil {
			errs = err
		} else {
			errs = fmt.Errorf("%w; %w", errs, err)
		}
	}
	ws := webserver.Site{Domain: s.Domain, Aliases: s.Aliases, RedirectAliases: s.Options.RedirectAliases, RedirectHTML: s.Options.RedirectHTML}
	sha := ""
	if s.Deployment != nil {
		sha = s.Deployment.SHA256
		ws.Root = n.opts.Bundles.Root(bundle)
		rules, err := n.rulesFor(sha)
		if err != nil {
			add(err)
		}
		ws.Rules = rules
	}
	ws.Protected = n.protected(s, sha, false)
	if n.tls != nil {
		tlsCfg, err := n.tls.siteTLS(s, certs)
		if err != nil {
			add(err)
		}
		ws.TLS = tlsCfg
	}
	return ws, errs
}

// keepServedForms replaces each site the web server rejected with the form
// it serves instead (its last applied one; none for a new site), so that
// the applied snapshot and the cache hold what is served.
func (n *Node) keepServedForms(sites []state.Site, rejected map[string]string) []state.Site {
	if len(rejected) == 0 {
		return sites
	}
	out := make([]state.Site, 0, len(sites))
	for _, s := range sites {
		if _, bad := rejected[s.Domain]; bad {
			old, ok := n.lastApplied(s.Domain)
			if !ok {
				continue
			}
			s = old
		}
		out = append(out, s)
	}
	return out
}

// resolveBundles makes every site serve a bundle that is present in full:
// a site whose deployed bundle has not arrived yet keeps serving the
// deployment it served before (or the placeholder), and says so in its
// error, until the fetcher brings the bundle and triggers a pass. sites is
// not modified.
func (n *Node) resolveBundles(sites []state.Site, errs map[string]string) ([]state.Site, map[string]string) {
	waiting := false
	defer func() { n.waitingForBundles = waiting }()
	for i, s := range sites {
		if s.Deployment == nil || (n.opts.Bundles != nil && n.opts.Bundles.Has(s.Deployment.SHA256)) {
			continue
		}
		if errs == nil {
			errs = map[string]string{}
		}
		msg := fmt.Sprintf("waiting for bundle %s@%s (%s) to arrive on this node", s.Deployment.App, s.Deployment.Version, s.Deployment.SHA256[:12])
		if n.fetch != nil {
			if e := n.fetch.lastError(s.Deployment.SHA256); e != "" {
				msg += ": " + e
			}
		}
		errs[s.Domain] = msg
		if !waiting {
			sites = slices.Clone(sites) // it may be the snapshot's
		}
		waiting = true
		sites[i].Deployment = nil
		if old, ok := n.lastApplied(s.Domain); ok && old.Deployment != nil && n.opts.Bundles != nil && n.opts.Bundles.Has(old.Deployment.SHA256) {
			sites[i].Deployment = old.Deployment
		}
	}
	return sites, errs
}

// bundleRemoveGrace is how long a bundle stays on disk after nothing uses
// it any more.
const bundleRemoveGrace = time.Minute

// bundleGCEvery spaces the look for unused local bundles: it lists the
// bundle store and walks every site, and removal waits bundleRemoveGrace
// anyway, so a pass for every change need not do it.
const bundleGCEvery = 15 * time.Second

// removeUnused deletes local bundles that the desired state no longer
// lists and the applied config has not served for bundleRemoveGrace. It
// looks at most every bundleGCEvery.
func (n *Node) removeUnused(ctx context.Context, snap, applied *state.Snapshot) {
	if n.opts.Bundles == nil || n.opts.Peers == nil || snap.PendingImport != "" || time.Since(n.lastBundleGC) < bundleGCEvery {
		return
	}
	n.lastBundleGC = time.Now()
	keep := map[string]bool{}
	for _, b := range snap.Bundles {
		keep[b.SHA256] = true
	}
	for _, s := range applied.Sites {
		if s.Deployment != nil {
			keep[s.Deployment.SHA256] = true
		}
	}
	for sha := range n.assets.inUse {
		keep[sha] = true
	}
	local, err := n.opts.Bundles.List()
	if err != nil {
		n.log.Warn("could not list local bundles", "err", err)
		return
	}
	now := time.Now()
	removed := 0
	for sha := range n.unusedSince {
		if keep[sha] {
			delete(n.unusedSince, sha)
		}
	}
	for _, sha := range local {
		if keep[sha] {
			continue
		}
		// Old nginx workers may still be answering requests from it.
		if since, ok := n.unusedSince[sha]; !ok {
			n.unusedSince[sha] = now
			continue
		} else if now.Sub(since) < bundleRemoveGrace {
			continue
		}
		delete(n.unusedSince, sha)
		if err := n.opts.Peers.Withdraw(ctx, sha); err != nil {
			n.log.Debug("could not withdraw a bundle; keeping it for now", "sha256", sha, "err", err)
			continue
		}
		if err := n.opts.Bundles.Remove(sha); err != nil {
			n.log.Warn("could not remove an unused bundle", "sha256", sha, "err", err)
			continue
		}
		delete(n.rules, sha)
		n.logins.forget(sha)
		n.log.Info("removed unused bundle", "sha256", sha)
		removed++
	}
	if removed > 0 || time.Since(n.lastPrune) > objectGrace {
		n.pruneObjects(ctx)
	}
}

// ObjectPruner is a BundleStore that keeps files as shared objects
// (deploy.Store); the node prunes them after it removes releases.
type ObjectPruner interface {
	PruneObjects(ctx context.Context, grace time.Duration) (int, error)
}

// objectGrace keeps unreferenced objects this long: an upload in progress
// sends its objects before the release that uses them.
const objectGrace = time.Hour

// pruneObjects removes the objects no release on this node uses: after
// releases were removed, and at least every objectGrace (the objects of
// an upload that never committed).
func (n *Node) pruneObjects(ctx context.Context) {
	p, ok := n.opts.Bundles.(ObjectPruner)
	if !ok {
		return
	}
	n.lastPrune = time.Now()
	count, err := p.PruneObjects(ctx, objectGrace)
	if err != nil && ctx.Err() == nil {
		n.log.Warn("could not prune unused objects", "err", err)
	}
	if count > 0 {
		n.log.Info("pruned objects no release uses", "objects", count)
	}
}

// usableSites returns the sites of snap that can be served. A site that
// does not validate (written to etcd behind the API's back) or claims a
// name another site holds keeps its last applied form, if it had one, and
// its error is returned; it never takes the other sites down. changed is
// how many sites changed, came or went since the last pass (all of them
// when the two cannot be paired).
func (n *Node) usableSites(snap *state.Snapshot) (sites []state.Site, errs map[string]string, changed int) {
	checked, gone, fresh, paired := n.recheck(snap.Sites)
	changed = len(fresh) + len(gone)
	if !paired || len(snap.Unreadable) > 0 || !n.claimChanges(snap.Sites, gone, fresh) {
		sites, errs = n.claimAll(snap, checked)
		return sites, errs, changed
	}
	// Every site is served as desired: when all are stored in their valid
	// form (the API stores them so), the snapshot's list is the answer,
	// shared, not copied.
	if !slices.ContainsFunc(checked, func(c *checkedSite) bool { return c != nil && c.norm != nil }) {
		return snap.Sites, nil, changed
	}
	out := make([]state.Site, len(checked))
	for i := range checked {
		out[i] = checked[i].form(snap.Sites[i])
	}
	return out, nil, changed
}

// recheck validates the sites, reusing the last pass's validation of every
// site whose revision did not change: both lists are in domain order (a
// snapshot's are), so one walk pairs them without a map. It returns the
// validations in the order of sites, the last pass's forms of the sites
// that changed or left (their names only), and the indexes of the sites
// that changed or came. When either list is out of order, they are not
// paired: every site is validated again and gone is nil.
//
// The last pass's sites are the list its snapshot shared (a snapshot's
// list is never changed once handed out, and the applied state holds it
// anyway), so a validation holds nothing of the site itself: a site
// stored in its valid form, as the API stores every site, costs one nil
// pointer.
func (n *Node) recheck(sites []state.Site) (checked []*checkedSite, gone []state.Site, fresh []int, paired bool) {
	prev, prevSites, next := n.checked, n.checkedSites, n.checkedNext[:0]
	sorted := slices.IsSortedFunc(sites, state.ByDomain)
	paired = sorted && n.checkedSorted
	j := 0
	for i, raw := range sites {
		if paired {
			for j < len(prev) && prevSites[j].Domain < raw.Domain {
				gone = appendValid(gone, prevSites[j], prev[j])
				j++
			}
			if j < len(prev) && prevSites[j].Domain == raw.Domain {
				if prevSites[j].Revision == raw.Revision && raw.Revision != 0 {
					next = append(next, prev[j])
					j++
					continue
				}
				gone = appendValid(gone, prevSites[j], prev[j])
				j++
			}
		}
		next = append(next, checkSite(raw))
		fresh = append(fresh, i)
	}
	if !paired {
		gone = nil
	} else {
		for ; j < len(prev); j++ {
			gone = appendValid(gone, prevSites[j], prev[j])
		}
	}
	// The spare list must not keep the last-but-one pass's faults alive.
	clear(prev)
	n.checked, n.checkedNext, n.checkedSites, n.checkedSorted = next, prev, sites, sorted
	return next, gone, fresh, paired
}

// appendValid appends the names of the valid form of the site stored as
// raw, unless it has none.
func appendValid(to []state.Site, raw state.Site, c *checkedSite) []state.Site {
	if c.failed() {
		return to
	}
	v := c.form(raw)
	return append(to, state.Site{Domain: v.Domain, Aliases: v.Aliases})
}

// claimChanges updates the name owners of the last pass with the sites
// that changed: the names of their old forms are released, then their new
// forms claim theirs. It does so only when the last pass served every site
// as desired, and reports false (the owners are then to be rebuilt) as
// soon as a changed site does not validate or claims a taken name: when no
// name clashes, the order in which sites claim does not matter, so the
// result is the one a walk of every site gives.
func (n *Node) claimChanges(sites, gone []state.Site, fresh []int) bool {
	if !n.ownersClean {
		return false
	}
	owner := n.owner
	for _, s := range gone {
		for _, name := range s.Claims() {
			if owner[name] == s.Domain {
				delete(owner, name)
			}
		}
	}
	for _, i := range fresh {
		c := n.checked[i]
		if c.failed() {
			return false
		}
		site := c.form(sites[i])
		for _, name := range site.Claims() {
			if o, taken := owner[name]; taken && o != site.Domain {
				return false
			}
			owner[name] = site.Domain
		}
	}
	return true
}

// claimAll has every site claim its names in domain order, the first
// claim winning; a site that does not validate, or loses a name, falls
// back to its last applied form if that form's names are free.
func (n *Node) claimAll(snap *state.Snapshot, checked []*checkedSite) ([]state.Site, map[string]string) {
	var errs map[string]string
	fail := func(domain string, err error) {
		if errs == nil {
			errs = map[string]string{}
		}
		errs[domain] = err.Error()
	}
	// The map is kept from pass to pass: at 100,000 sites, allocating it
	// anew each time cost more than filling it.
	if n.owner == nil {
		n.owner = make(map[string]string, 2*len(snap.Sites))
	}
	owner := n.owner
	clear(owner)
	out := make([]state.Site, 0, len(snap.Sites))
	claim := func(s state.Site) bool {
		if o, taken := owner[s.Domain]; taken && o != s.Domain {
			fail(s.Domain, fmt.Errorf("name %q is already used by site %q", s.Domain, o))
			return false
		}
		for _, name := range s.Aliases {
			if o, taken := owner[name]; taken && o != s.Domain {
				fail(s.Domain, fmt.Errorf("name %q is already used by site %q", name, o))
				return false
			}
		}
		for _, p := range s.Previews {
			if o, taken := owner[p.Host]; taken && o != s.Domain {
				fail(s.Domain, fmt.Errorf("preview host %q is already used by site %q", p.Host, o))
				return false
			}
		}
		owner[s.Domain] = s.Domain
		for _, name := range s.Aliases {
			owner[name] = s.Domain
		}
		for _, p := range s.Previews {
			owner[p.Host] = s.Domain
		}
		return true
	}
	for _, domain := range slices.Sorted(maps.Keys(snap.Unreadable)) {
		fail(domain, fmt.Errorf("unreadable site record in the store: %s", snap.Unreadable[domain]))
		if old, ok := n.lastApplied(domain); ok && claim(old) {
			out = append(out, old)
		}
	}
	for i, c := range checked {
		if c.failed() {
			domain := snap.Sites[i].Domain
			fail(domain, c.err)
			if old, ok := n.lastApplied(domain); ok && claim(old) {
				out = append(out, old)
			}
			continue
		}
		if site := c.form(snap.Sites[i]); claim(site) {
			out = append(out, site)
		}
	}
	// The owners can be updated by the next pass only if they hold
	// exactly the names of the sites as checked.
	n.ownersClean = errs == nil
	if len(snap.Unreadable) > 0 {
		// The last good forms of unreadable sites went first; the applied
		// snapshot must be in domain order (Snapshot.Site searches it).
		slices.SortFunc(out, state.ByDomain)
	}
	return out, errs
}

// checkedSite is the validation of a site at one revision, kept so that a
// pass over 100,000 sites re-validates only those that changed. nil means
// the site is stored in its valid form (the API stores every site so):
// only a site stored otherwise costs more than a pointer.
type checkedSite struct {
	err  error       // why the site cannot be served
	norm *state.Site // the valid form, when it differs from the stored one
}

// failed reports whether the site did not validate.
func (c *checkedSite) failed() bool { return c != nil && c.err != nil }

// form returns the valid form of the site stored as raw.
func (c *checkedSite) form(raw state.Site) state.Site {
	if c != nil && c.norm != nil {
		return *c.norm
	}
	return raw
}

func checkSite(raw state.Site) *checkedSite {
	s, err := state.NormalizeSite(raw)
	if err == nil && s.Domain != raw.Domain {
		err = errors.New("domain is not in normal form")
	}
	switch {
	case err != nil:
		return &checkedSite{err: fmt.Errorf("invalid site in the store: %w", err)}
	case s.Equal(raw):
		return nil
	default:
		return &checkedSite{norm: &s}
	}
}

func (n *Node) lastApplied(domain string) (state.Site, bool) {
	a := n.applied.Load()
	if a == nil {
		return state.Site{}, false
	}
	return a.Site(domain)
}
