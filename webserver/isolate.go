package webserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
)

// Result is what Apply did.
type Result struct {
	// Changed reports whether a new config went live (nginx reloaded).
	Changed bool
	// Switched is how many names were pointed at another document root,
	// added or removed, without a reload.
	Switched int
	// Rejected maps the domain of each site whose desired form is not
	// served to the reason: a value Render refuses, a name another site
	// holds, or nginx's own message when `nginx -t` refused the site's
	// config. Such a site keeps the form it was served in before, if any
	// (a new site is not served); every other site is applied.
	Rejected map[string]string
}

// refusal is a site form that `nginx -t` refused. The same form is not
// tested again; a changed one is.
type refusal struct {
	site   Site
	reason string
}

// selection sorts the sites of a plan by what Apply does with them.
type selection struct {
	sites    []Site          // every site of the plan, sorted by domain, without repeats
	same     []bool          // per site: its desired form is already live
	changed  map[string]Site // desired form to try
	fallback map[string]Site // live form, kept while the desired one is not served
	rejected map[string]string
	live     int // how many of sites are live (in any form)
}

// selectSites compares plan's sites with the live ones. A site already live
// in its desired form is kept without checks; any other is checked alone
// (Render's validation, its rules, its TLS settings, and names against the
// other sites), and a form nginx refused before is not tried again. The
// caller holds applySem.
func (s *Server) selectSites(plan Plan) selection {
	sel := selection{changed: map[string]Site{}, fallback: map[string]Site{}, rejected: map[string]string{}}
	sel.sites = withoutRepeats(sortedSites(plan.Sites), sel.rejected)
	sel.same = make([]bool, 0, len(sel.sites))
	// Both lists are in domain order: one walk pairs each site with its
	// live form.
	live, j := s.liveSites, 0
	for _, site := range sel.sites {
		d := site.Domain
		for j < len(live) && live[j].Domain < d {
			j++
		}
		var old Site
		wasLive := j < len(live) && live[j].Domain == d
		if wasLive {
			old = live[j]
			sel.live++
		}
		if wasLive && old.equal(site) {
			sel.same = append(sel.same, true)
			continue
		}
		sel.same = append(sel.same, false)
		if wasLive {
			sel.fallback[d] = old
		}
		if err := checkSiteAlone(site, plan); err != nil {
			sel.rejected[d] = err.Error()
			continue
		}
		if r, ok := s.refused[d]; ok && r.site.equal(site) {
			sel.rejected[d] = r.reason
			continue
		}
		sel.changed[d] = site
	}
	sel.rejectNameClashes()
	return sel
}

// withoutRepeats returns sorted without the sites whose domain repeats the
// one before (noted in rejected); sorted itself when none does.
func withoutRepeats(sorted []Site, rejected map[string]string) []Site {
	repeats := func(i int) bool { return i > 0 && sorted[i-1].Domain == sorted[i].Domain }
	first := -1
	for i := range sorted {
		if repeats(i) {
			first = i
			break
		}
	}
	if first < 0 {
		return sorted
	}
	out := slices.Clone(sorted[:first])
	for i := first; i < len(sorted); i++ {
		if repeats(i) {
			rejected[sorted[i].Domain] = "the plan lists this site twice; its first form is applied"
			continue
		}
		out = append(out, sorted[i])
	}
	return out
}

// equal reports whether two sites are the same in every field.
func (s Site) equal(o Site) bool {
	return s.Domain == o.Domain && s.Root == o.Root && s.RedirectAliases == o.RedirectAliases &&
		s.RedirectHTML == o.RedirectHTML && slices.Equal(s.Aliases, o.Aliases) &&
		(s.Rules == o.Rules || reflect.DeepEqual(s.Rules, o.Rules)) && s.TLS.equal(o.TLS) && s.Preview == o.Preview && s.Protected == o.Protected
}

// equal compares two TLS settings without reflection: the reconciler
// builds them anew on every pass, for every HTTPS site.
func (t *SiteTLS) equal(o *SiteTLS) bool {
	if t == nil || o == nil {
		return t == o
	}
	return t.RedirectHTTP == o.RedirectHTTP && t.HSTS == o.HSTS &&
		slices.EqualFunc(t.Certificates, o.Certificates, func(a, b CertFiles) bool {
			return a.Chain == b.Chain && a.Key == b.Key && a.Staple == b.Staple && slices.Equal(a.Names, b.Names)
		})
}

// rejectNameClashes rejects a changed site that claims a name a site kept
// as it is serves, or that an earlier changed site claims.
//
// Only the names the changed sites claim are looked up among the others,
// so a pass that changes a few sites builds no map of every name.
func (sel *selection) rejectNameClashes() {
	if len(sel.changed) == 0 {
		return
	}
	claimed := map[string]bool{}
	for _, site := range sel.changed {
		for _, n := range site.names() {
			claimed[n] = true
		}
	}
	owner := map[string]string{}
	for i, site := range sel.sites {
		if !sel.same[i] {
			continue
		}
		if claimed[site.Domain] {
			owner[site.Domain] = site.Domain
		}
		for _, a := range site.Aliases {
			if claimed[a] {
				owner[a] = site.Domain
			}
		}
	}
	for _, s := range sel.sites {
		d := s.Domain
		site, ok := sel.changed[d]
		if !ok {
			continue
		}
		if n, o := clash(site, owner); n != "" {
			delete(sel.changed, d)
			sel.rejected[d] = fmt.Sprintf("hostname %q is already used by site %q", n, o)
			continue
		}
		for _, n := range site.names() {
			owner[n] = d
		}
	}
}

// clash returns a name of site that owner gives another site, and that site.
func clash(site Site, owner map[string]string) (name, other string) {
	for _, n := range site.names() {
		if o, ok := owner[n]; ok && o != site.Domain {
			return n, o
		}
	}
	return "", ""
}

// checkSiteAlone reports what Render would refuse in site on its own.
func checkSiteAlone(site Site, plan Plan) error {
	if err := validateSite(site, plan.PlaceholderRoot, map[string]string{}); err != nil {
		return err
	}
	if err := checkPreview(site, plan.Previews); err != nil {
		return err
	}
	if site.Protected && plan.AuthUpstream == "" {
		return fmt.Errorf("protected, but the plan has no auth upstream")
	}
	if plan.HTTPSListen != "" && site.TLS != nil {
		if err := validateSiteTLS(site); err != nil {
			return err
		}
	}
	if err := site.Rules.Check(); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	return nil
}

// assemble returns plan with the sites to render: those kept as they are,
// the changed ones in accepted in their desired form, and the others in
// their live form unless a name of it is now another site's; and the live
// forms it left out for that reason.
func (sel *selection) assemble(plan Plan, accepted map[string]bool) (Plan, []Site) {
	if sel.allServed(accepted) {
		// Every site goes live as planned: the plan's list is the
		// answer, not a copy of it.
		plan.Sites = sel.sites
		return plan, nil
	}
	plan.Sites = make([]Site, 0, len(sel.sites))
	var fallbacks []Site
	for i, site := range sel.sites {
		d := site.Domain
		ok := sel.same[i]
		if !ok && accepted[d] {
			site, ok = sel.changed[d]
		}
		if !ok {
			if old, has := sel.fallback[d]; has {
				fallbacks = append(fallbacks, old)
			}
			continue
		}
		plan.Sites = append(plan.Sites, site)
	}
	if len(fallbacks) == 0 {
		return plan, nil
	}
	owner := map[string]string{}
	for _, site := range plan.Sites {
		for _, n := range site.names() {
			owner[n] = site.Domain
		}
	}
	var dropped []Site
	for _, old := range fallbacks {
		if n, _ := clash(old, owner); n == "" {
			plan.Sites = append(plan.Sites, old)
		} else {
			dropped = append(dropped, old)
		}
	}
	return plan, dropped
}

// allServed reports whether every site of the selection is live in its
// planned form or among the accepted changes.
func (sel *selection) allServed(accepted map[string]bool) bool {
	for i, site := range sel.sites {
		if !sel.same[i] && !accepted[site.Domain] {
			return false
		}
	}
	return true
}

// first returns the plan of assemble's results.
func first(p Plan, _ []Site) Plan { return p }

// allChanged is every changed site, accepted.
func (sel *selection) allChanged() map[string]bool {
	all := make(map[string]bool, len(sel.changed))
	for d := range sel.changed {
		all[d] = true
	}
	return all
}

// isolate finds the changed sites whose config nginx refuses, after the
// plan with all of them was refused with full: it tests the plan without
// any change first (if nginx refuses that too, the fault is not a site's
// and full is returned), then halves the changed sites until each refused
// one stands alone. It returns the changed sites that can go live
// together, and records the refused ones. It blocks for a few `nginx -t`
// runs per refused site; ctx ending aborts it with ctx's error.
func (s *Server) isolate(ctx context.Context, opts Options, plan Plan, sel *selection, full *TestError) (map[string]bool, error) {
	accepted := map[string]bool{}
	if err := s.tryPlan(ctx, opts, first(sel.assemble(plan, accepted))); err != nil {
		var te *TestError
		if errors.As(err, &te) {
			return nil, full // not a site's fault: report nginx's first answer
		}
		return nil, err
	}
	var search func(cands []string) error
	search = func(cands []string) error {
		if len(cands) == 0 {
			return nil
		}
		trial := map[string]bool{}
		for d := range accepted {
			trial[d] = true
		}
		for _, d := range cands {
			trial[d] = true
		}
		err := s.tryPlan(ctx, opts, first(sel.assemble(plan, trial)))
		var te *TestError
		switch {
		case err == nil:
			accepted = trial
			return nil
		case !errors.As(err, &te):
			return err
		case len(cands) == 1:
			s.reject(sel, cands[0], te)
			return nil
		}
		if err := search(cands[:len(cands)/2]); err != nil {
			return err
		}
		return search(cands[len(cands)/2:])
	}
	var cands []string
	for _, site := range sel.sites {
		if _, ok := sel.changed[site.Domain]; ok {
			cands = append(cands, site.Domain)
		}
	}
	// All of them together is the plan that failed: start with halves.
	if len(cands) == 1 {
		s.reject(sel, cands[0], full)
		return accepted, nil
	}
	for _, half := range [][]string{cands[:len(cands)/2], cands[len(cands)/2:]} {
		if err := search(half); err != nil {
			return nil, err
		}
	}
	return accepted, nil
}

// reject records that nginx refused the changed site d.
func (s *Server) reject(sel *selection, d string, te *TestError) {
	reason := "nginx refused this site's configuration: " + te.Output
	s.refused[d] = refusal{site: sel.changed[d], reason: reason}
	sel.rejected[d] = reason
}

// Test renders plan as a whole and has `nginx -t` check it, changing
// nothing: no site is set aside, so any value Render refuses or any site
// nginx refuses fails it (a *TestError carries nginx's output). It blocks
// until nginx exits or ctx ends, and runs beside Apply.
func (s *Server) Test(ctx context.Context, plan Plan) error {
	g, err := render(plan, s.opts)
	if err != nil {
		return err
	}
	tests := filepath.Join(s.opts.Prefix, "tests")
	if err := os.MkdirAll(tests, 0o755); err != nil {
		return fmt.Errorf("stage config: %w", err)
	}
	dir, err := os.MkdirTemp(tests, g.id+"-")
	if err != nil {
		return fmt.Errorf("stage config: %w", err)
	}
	if err := stageFiles(dir, g.files, false); err != nil {
		return fmt.Errorf("stage config: %w", err)
	}
	defer s.discard(dir)
	return s.testConfig(ctx, dir)
}

// tryPlan renders plan, stages it without syncing and runs `nginx -t` on
// it, then removes it. The live generation counts as tested.
func (s *Server) tryPlan(ctx context.Context, opts Options, plan Plan) error {
	g, err := render(plan, opts)
	if err != nil {
		return err
	}
	if g.id == s.currentLive() {
		return nil
	}
	dir := filepath.Join(s.opts.genDir(), g.id)
	if err := stageFiles(dir, g.files, false); err != nil {
		return fmt.Errorf("stage config: %w", err)
	}
	defer s.discard(dir)
	return s.testConfig(ctx, dir)
}

func (s *Server) currentLive() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// sameConfig reports whether plan renders the live generation for certain
// without rendering it: its settings and the operator's files are the
// live ones, and every site that differs from its live form differs only
// in its root, or is plain (nginx's config does not name it) and was added
// or removed. That is the common change (a deploy, a rollback, a plain
// site added or removed), and it then costs the sites it touches, not a
// render of the fleet.
func (s *Server) sameConfig(opts Options, plan Plan, d liveDiff) bool {
	if s.liveGen.id == "" || s.liveGen.id != s.currentLive() || !sameSettings(plan, s.livePlan) {
		return false
	}
	files := map[string][]byte{}
	names, err := readExtras(opts, files)
	if err != nil || extrasDigest(files, names) != s.liveGen.extras {
		return false // the operator's files changed: render and test them
	}
	return d.onlyLinks()
}

// sameSettings compares what a plan holds besides its sites.
func sameSettings(a, b Plan) bool {
	a.Sites, b.Sites = nil, nil
	return reflect.DeepEqual(a, b)
}

// recordLive remembers the settings of the plan that went live (relink
// recorded its sites) and forgets refusals of sites that left the plan or
// changed since.
func (s *Server) recordLive(plan Plan, sel *selection) {
	plan.Sites = nil
	s.livePlan = plan
	for d, r := range s.refused {
		if sel.rejected[d] != r.reason {
			delete(s.refused, d)
		}
	}
}
