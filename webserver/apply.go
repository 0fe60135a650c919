package webserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sitefleet/sitefleet/internal/fsutil"
)

// Apply makes nginx serve plan, site by site: a site already live in its
// desired form is kept; any other is applied unless Render refuses one of
// its values or nginx refuses its config, in which case it keeps the form
// it was served in before (a new site is not served) and Result.Rejected
// says why. Every other site is applied all the same. A form nginx refused
// is not tried again until it changes.
//
// If the rendered bytes equal the live generation, Apply touches nothing.
// Otherwise it writes a new generation directory, runs `nginx -t` against
// the staged tree and, only if that passes, swaps it live atomically and
// reloads nginx (SIGHUP when managed and running; ReloadCommand when
// unmanaged and the pid file names a live master). When nginx refuses the
// staged tree, Apply tests it without any changed site: if nginx refuses
// that too, the fault is not a site's and a *TestError carrying nginx's
// output is returned with the live config untouched; otherwise it halves
// the changed sites until it has found those nginx refuses (a few more
// `nginx -t` runs per refused site). It then waits up to ReloadTimeout
// until nginx is observed serving the new generation through the probe
// server, and until the old workers stopped accepting. When no nginx is
// running the swap alone is enough: the next start uses the new generation.
//
// A reload that is not observed within ReloadTimeout is rolled back (the
// previous generation is swapped back in) and returned as an error. If ctx
// ends while waiting for the reload, the signalled generation stays live
// and ctx's error is returned. An invalid listen address, prefix or other
// setting that is not a site's fails the whole plan.
//
// Apply blocks; it is safe for concurrent use but calls are serialised, and a
// call waiting for another one gives up when its ctx ends.
func (s *Server) Apply(ctx context.Context, plan Plan) (Result, error) {
	if err := s.applySem.acquire(ctx); err != nil {
		return Result{}, fmt.Errorf("apply: wait for previous apply: %w", err)
	}
	defer s.applySem.release()
	start := time.Now()
	res, id, err := s.apply(ctx, plan)
	s.setError(err)
	if err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	s.lastApply = time.Now()
	s.mu.Unlock()
	s.markReady()
	switch {
	case res.Changed:
		s.log.Info("nginx config applied", "generation", id, "sites", len(plan.Sites), "switched", res.Switched, "rejected", len(res.Rejected), "took", time.Since(start).Round(time.Millisecond))
	case res.Switched > 0:
		s.log.Info("document roots switched", "sites", len(plan.Sites), "switched", res.Switched, "rejected", len(res.Rejected), "took", time.Since(start).Round(time.Millisecond))
	}
	return res, nil
}

// apply does the work of Apply; the caller holds applySem.
func (s *Server) apply(ctx context.Context, plan Plan) (Result, string, error) {
	if err := validateGlobal(plan); err != nil {
		return Result{}, "", fmt.Errorf("render: plan: %w", err)
	}
	// Every config this Apply renders sees the operator's files as read
	// now, even if they change while it tests.
	opts, err := s.opts.withExtrasRead()
	if err != nil {
		return Result{}, "", err
	}
	sel := s.selectSites(plan)
	final, g, diff, err := s.settle(ctx, opts, plan, &sel)
	if err != nil {
		return Result{}, "", err
	}
	// A config change goes live before the links, so that a site shows
	// up (or changes) with its redirects, rules and TLS settings at once;
	// removed names go last, once no config names them.
	changed, err := s.swapIn(ctx, g)
	if err != nil {
		return Result{}, "", err
	}
	switched, removed, err := s.relink(final, diff)
	if err != nil {
		return Result{}, "", err
	}
	s.recordLive(final, &sel)
	res := Result{Changed: changed, Switched: switched + removed}
	if len(sel.rejected) > 0 {
		res.Rejected = sel.rejected
	}
	return res, g.id, nil
}

// wantedLinks are the links a plan needs.
type wantedLinks struct{ hosts, certs map[string]string }

// wanted computes them. Only a full relink (the first Apply, one after a
// link failed or the settings changed) needs them, so they are not kept.
func (s *Server) wanted(plan Plan) wantedLinks {
	hosts, certs := s.opts.links(plan)
	return wantedLinks{hosts: hosts, certs: certs}
}

// linkIn points every name of plan at its document root and certificate
// set; it returns how many links it switched.
func (s *Server) linkIn(plan Plan, want wantedLinks) (int, error) {
	for _, site := range plan.Sites {
		if err := s.opts.siteCertSets(plan, site); err != nil {
			return 0, err
		}
	}
	hosts, err := s.hosts.update(want.hosts)
	if err != nil {
		return hosts, err
	}
	certs, err := s.certs.update(want.certs)
	return hosts + certs, err
}

// linkOut removes the links of names not wanted, and the certificate
// sets no name uses; it returns how many links it removed.
func (s *Server) linkOut(want wantedLinks) (int, error) {
	hosts, err1 := s.hosts.prune(want.hosts)
	certs, err2 := s.certs.prune(want.certs)
	if certs == 0 && err2 == nil {
		return hosts, err1
	}
	return hosts + certs, errors.Join(err1, err2, s.opts.pruneCertSets(s.certs))
}

// relink brings the links in line with final. Once the links on disk are
// known to match the live sites, only the sites of the diff are touched;
// the first time (after New) and after a link failed, every link is
// compared and the stray ones removed.
func (s *Server) relink(final Plan, diff liveDiff) (int, int, error) {
	if s.linksSynced && sameSettings(final, s.livePlan) {
		switched, err := s.relinkIn(final, diff)
		if err != nil {
			s.linksSynced = false
			return switched, 0, err
		}
		removed, err := s.relinkOut(final, diff)
		if err != nil {
			s.linksSynced = false
			s.log.Warn("could not remove the links of names no longer served", "err", err)
		}
		s.liveSites = liveList(final.Sites)
		return switched, removed, nil
	}
	want := s.wanted(final)
	switched, err := s.linkIn(final, want)
	if err != nil {
		return switched, 0, err
	}
	removed, err := s.linkOut(want)
	if err != nil {
		s.log.Warn("could not remove the links of names no longer served", "err", err)
	}
	s.linksSynced = err == nil
	s.liveSites = liveList(final.Sites)
	return switched, removed, nil
}

// liveList returns the sites of a plan that went live in domain order:
// the plan's own list when it is in order (the reconciler's plans are,
// and assemble keeps a plan's list when every site in it is served as
// planned), so that a node does not hold a second copy of 100,000 sites.
// The server never changes the list it keeps; Apply's callers do not
// change a plan's list once it is applied either.
func liveList(sites []Site) []Site {
	if slices.IsSortedFunc(sites, byDomain) {
		return sites
	}
	return slices.SortedFunc(slices.Values(sites), byDomain)
}

// settle renders the plan with every changed site and has nginx test it;
// if nginx refuses it, it isolates the sites at fault and renders the plan
// without them. It returns the plan to serve and its generation, staged
// and tested unless it is the live one.
func (s *Server) settle(ctx context.Context, opts Options, plan Plan, sel *selection) (Plan, generation, liveDiff, error) {
	all := sel.allChanged()
	final, dropped := sel.assemble(plan, all)
	diff := s.diffOf(sel, all, dropped)
	if s.sameConfig(opts, final, diff) {
		return final, s.liveGen, diff, nil // only links change: nothing to render
	}
	g, err := render(final, opts)
	if err != nil {
		return Plan{}, generation{}, liveDiff{}, err
	}
	err = s.stageAndTest(ctx, g)
	var te *TestError
	if !errors.As(err, &te) || len(sel.changed) == 0 {
		return final, g, diff, err
	}
	accepted, err := s.isolate(ctx, opts, plan, sel, te)
	if err != nil {
		return Plan{}, generation{}, liveDiff{}, err
	}
	final, dropped = sel.assemble(plan, accepted)
	if g, err = render(final, opts); err != nil {
		return Plan{}, generation{}, liveDiff{}, err
	}
	return final, g, s.diffOf(sel, accepted, dropped), s.stageAndTest(ctx, g)
}

// stageAndTest writes g into its generation directory and has `nginx -t`
// check it, unless g is live already. A *TestError means nginx refused it;
// the directory is then removed.
func (s *Server) stageAndTest(ctx context.Context, g generation) error {
	if g.id == s.currentLive() {
		return nil
	}
	dir := filepath.Join(s.opts.genDir(), g.id)
	if err := stageFiles(dir, g.files, true); err != nil {
		return fmt.Errorf("stage config: %w", err)
	}
	if err := s.testConfig(ctx, dir); err != nil {
		s.discard(dir)
		return err // a *TestError as is, for callers' type checks
	}
	return nil
}

// swapIn makes the staged and tested g live, unless it is already: swap
// the config link, reload. It reports whether g went live.
func (s *Server) swapIn(ctx context.Context, g generation) (bool, error) {
	s.mu.Lock()
	old := s.live
	if g.id == old {
		s.probeAddr = g.listen.dialAddr()
		s.liveGen = generation{id: g.id, listen: g.listen, extras: g.extras}
		s.mu.Unlock()
		return false, nil
	}
	s.mu.Unlock()
	dir := filepath.Join(s.opts.genDir(), g.id)
	if err := s.swap(g.id); err != nil {
		s.discard(dir)
		return false, fmt.Errorf("swap config: %w", err)
	}
	if err := s.reload(ctx, g); err != nil {
		if ctx.Err() != nil { // nginx was signalled and most likely loads it: keep it live
			s.commit(g, old)
			return false, err
		}
		return false, errors.Join(err, s.rollback(old, dir))
	}
	s.reloads.Add(1)
	s.commit(g, old)
	if err := s.collectGarbage(); err != nil { // the new config is live regardless
		s.log.Warn("could not remove old nginx generations", "err", err)
	}
	return true, nil
}

// commit records g as live.
func (s *Server) commit(g generation, old string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prev, s.live = old, g.id
	s.liveGen = generation{id: g.id, listen: g.listen, extras: g.extras}
	s.probeAddr = g.listen.dialAddr()
}

// stageFiles writes files into a fresh dir (0755, files 0644), synced to
// disk when sync is set (a generation that may go live).
func stageFiles(dir string, files map[string][]byte, sync bool) error {
	if err := os.RemoveAll(dir); err != nil { // a leftover of a crash or failed test
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.ContainsRune(name, '/') {
			return fmt.Errorf("generation file name %q contains '/'", name)
		}
		if err := writeFile(filepath.Join(dir, name), files[name], 0o644, sync); err != nil {
			return err
		}
	}
	if !sync {
		return nil
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(dir))
}

// discard removes a staged generation that will not go live. A failure is
// only logged: the next Apply or garbage collection removes it.
func (s *Server) discard(dir string) {
	if err := removeGeneration(dir); err != nil {
		s.log.Warn("could not remove a discarded nginx generation", "dir", dir, "err", err)
	}
}

func removeGeneration(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove staged config: %w", err)
	}
	return nil
}

// testConfig runs `nginx -t` against a staged generation. It blocks until
// nginx exits or ctx ends. A rejected config yields a *TestError.
func (s *Server) testConfig(ctx context.Context, dir string) error {
	args := []string{"-t", "-q"}
	if s.opts.caps.supportsErrorLogFlag() {
		args = append(args, "-e", "stderr")
	}
	args = append(args, "-p", s.opts.Prefix, "-c", filepath.Join(dir, mainFile))
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, s.opts.Binary, args...)
	cmd.Dir = s.opts.Prefix
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	output := strings.TrimSpace(out.String())
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("test config: %w", ctx.Err())
	case errors.As(err, &exitErr):
		return &TestError{Output: output}
	case err != nil:
		return fmt.Errorf("test config: %w", err)
	}
	if output != "" {
		s.log.Warn("nginx accepted the new config with warnings", "output", output)
	}
	return nil
}

// swap atomically points <Prefix>/conf at generations/<id> by renaming a
// fresh symlink over it.
func (s *Server) swap(id string) error {
	tmp := filepath.Join(s.opts.Prefix, ".conf-"+id+".tmp")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if id == "" { // rollback to "no config at all"
		if err := os.Remove(s.opts.confLink()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return fsutil.SyncDir(s.opts.Prefix)
	}
	if err := os.Symlink(filepath.Join(filepath.Base(s.opts.genDir()), id), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.opts.confLink()); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return fsutil.SyncDir(s.opts.Prefix)
}

// rollback swaps the previous generation back in after a failed reload and
// removes the failed one.
func (s *Server) rollback(old, failedDir string) error {
	if err := s.swap(old); err != nil {
		return fmt.Errorf("roll back to generation %q: %w", old, err)
	}
	return removeGeneration(failedDir)
}

// collectGarbage removes every generation but the live and the previous one,
// plus leftover temporary symlinks.
func (s *Server) collectGarbage() error {
	s.mu.Lock()
	keep := map[string]bool{s.live: true, s.prev: true}
	s.mu.Unlock()
	entries, err := os.ReadDir(s.opts.genDir())
	if err != nil {
		return fmt.Errorf("clean old generations: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !keep[e.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(s.opts.genDir(), e.Name())))
		}
	}
	tmps, _ := filepath.Glob(filepath.Join(s.opts.Prefix, ".conf-*.tmp"))
	for _, t := range tmps {
		errs = append(errs, os.Remove(t))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean old generations: %w", err)
	}
	return nil
}
