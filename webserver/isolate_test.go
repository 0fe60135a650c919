package webserver

import (
	"context"
	stdtls "crypto/tls"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sftls "github.com/sitefleet/sitefleet/tls"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

// TestApplyIsolatesRefusedSites checks that a site whose config nginx
// refuses (here: a stapled certificate whose file is garbage, which nginx
// loads with the config) or that Render refuses keeps its last live form,
// or is not served if it is new, while every other change in the same plan
// goes live; that the refusal names the site with nginx's message; that
// the same form is not tested again; and that a fixed form is applied.
func TestApplyIsolatesRefusedSites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	certDir := filepath.Join(f.dir, "certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		t.Fatal(err)
	}
	goodCert, _ := certFiles(t, s, certDir, "bad.test")
	goodCert.Staple = true
	garbage := goodCert
	garbage.Chain = filepath.Join(certDir, "garbage.crt")
	if err := os.WriteFile(garbage.Chain, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dh := filepath.Join(f.dir, "dh.pem")
	if err := os.WriteFile(dh, sftls.FFDHE2048(), 0o644); err != nil {
		t.Fatal(err)
	}
	httpsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	root := func(name, body string) string { return f.site(t, name, map[string]string{"index.html": body}) }
	base := Plan{HTTPListen: f.listen, HTTPSListen: httpsAddr, DHParams: dh, PlaceholderRoot: f.placeholder}
	plan := base
	plan.Sites = []Site{
		{Domain: "a.test", Root: root("a1", "a1")},
		{Domain: "bad.test", Root: root("bad1", "bad1"), TLS: &SiteTLS{Certificates: []CertFiles{goodCert}}},
	}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "bad.test", "/", 200, "bad1")

	// One plan: a.test changes, c.test and d.test are new, bad.test
	// changes to a form nginx refuses, new.bad.test is new and refused,
	// hostile.test carries a value Render refuses.
	plan = base
	plan.Sites = []Site{
		{Domain: "a.test", Root: root("a2", "a2")},
		{Domain: "bad.test", Root: root("bad2", "bad2"), TLS: &SiteTLS{Certificates: []CertFiles{garbage}}},
		{Domain: "c.test", Root: root("c", "c")},
		{Domain: "d.test", Root: root("d", "d"), Aliases: []string{"www.d.test"}},
		{Domain: "new.bad.test", Root: root("nb", "nb"), TLS: &SiteTLS{Certificates: []CertFiles{{Names: []string{"new.bad.test"}, Chain: garbage.Chain, Key: garbage.Key, Staple: true}}}},
		{Domain: "hostile.test", Root: "/srv/x;return 200"},
	}
	res := apply(t, s, plan)
	if res.Switched == 0 {
		t.Fatal("Apply: nothing switched, want the good sites applied")
	}
	for _, d := range []string{"bad.test", "new.bad.test"} {
		if !strings.Contains(res.Rejected[d], "nginx refused") || !strings.Contains(res.Rejected[d], "garbage.crt") {
			t.Errorf("Rejected[%s] = %q, want nginx's message naming the certificate", d, res.Rejected[d])
		}
	}
	if !strings.Contains(res.Rejected["hostile.test"], `"/srv/x;return 200"`) {
		t.Errorf("Rejected[hostile.test] = %q, want the refused root named", res.Rejected["hostile.test"])
	}
	if len(res.Rejected) != 3 {
		t.Errorf("Rejected = %v, want exactly bad.test, new.bad.test and hostile.test", res.Rejected)
	}
	for host, body := range map[string]string{"a.test": "a2", "c.test": "c", "d.test": "d", "www.d.test": "d", "bad.test": "bad1"} {
		if r := mustGet(t, f.listen, host, "/"); r.status != 200 || r.body != body {
			t.Errorf("GET %s: got %d %q, want 200 %q", host, r.status, r.body, body)
		}
	}
	for _, host := range []string{"new.bad.test", "hostile.test"} {
		if r := mustGet(t, f.listen, host, "/"); r.status != 404 || r.body != UnknownHostBody {
			t.Errorf("GET %s: got %d %q, want the unknown-host answer", host, r.status, r.body)
		}
	}

	// The same plan again: nothing to test, nothing changes, same reasons.
	start := time.Now()
	again := apply(t, s, plan)
	if again.Changed || len(again.Rejected) != 3 || again.Rejected["bad.test"] != res.Rejected["bad.test"] {
		t.Errorf("same plan again: got %+v, want no change and the same rejections", again)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Logf("note: unchanged apply took %s", d)
	}

	// Fixed: bad.test applies, the other refusals stay. (Apply keeps the
	// list it applied: the next plan is a new one.)
	plan.Sites = slices.Clone(plan.Sites)
	plan.Sites[1].TLS = &SiteTLS{Certificates: []CertFiles{goodCert}}
	fixed := apply(t, s, plan)
	if fixed.Switched == 0 || fixed.Rejected["bad.test"] != "" || len(fixed.Rejected) != 2 {
		t.Errorf("after the fix: got %+v, want bad.test applied", fixed)
	}
	waitServing(t, f.listen, "bad.test", "/", 200, "bad2")
}

// TestApplyGlobalFaultIsNotBlamedOnSites checks that when nginx refuses
// the config with no site changed, Apply fails as a whole with nginx's
// message and rejects no site.
func TestApplyGlobalFaultIsNotBlamedOnSites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s, plan := f.withOperatorFile(t)
	writeFiles(t, f.dir, map[string]string{"extra.conf": "garbage here;\n"})
	plan.Sites = append(plan.Sites, Site{Domain: "new.test"})
	res, err := s.Apply(context.Background(), plan)
	if err == nil || !strings.Contains(err.Error(), `unknown directive "garbage"`) || len(res.Rejected) != 0 {
		t.Fatalf("Apply with a broken operator file: got %+v, %v; want nginx's error and no site blamed", res, err)
	}
}

// TestApplyReadsOperatorFilesOnce: an operator fixing a broken file while
// Apply tests configs must not make the changed sites look refused. The
// file here is a FIFO that gives broken contents to its first reader and
// good ones after: Apply must see one version throughout, so it reports
// the file's fault and blames no site.
func TestApplyReadsOperatorFilesOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s, plan := f.withOperatorFile(t)
	extra := filepath.Join(f.dir, "extra.conf")

	if err := os.Remove(extra); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(extra, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			w, err := os.OpenFile(extra, os.O_WRONLY, 0) // blocks until a reader opens it
			if err != nil {
				return
			}
			body := "gzip on;\n"
			if i == 0 {
				body = "garbage here;\n"
			}
			_, _ = w.WriteString(body)
			w.Close()
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		// Unblock the writer's open, if it waits for a reader.
		if r, err := os.OpenFile(extra, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			time.Sleep(10 * time.Millisecond)
			r.Close()
		}
		<-stopped
	})
	plan.Sites = append(plan.Sites, Site{Domain: "new.test"})
	res, err := s.Apply(context.Background(), plan)
	if err == nil || !strings.Contains(err.Error(), `unknown directive "garbage"`) || len(res.Rejected) != 0 {
		t.Fatalf("Apply while the operator's file is fixed: got %+v, %v; want the file's error and no site blamed", res, err)
	}
}

func apply(t *testing.T, s *Server, plan Plan) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Apply(ctx, plan)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

// TestCertificateRenewalNeedsNoReload checks that a name's new certificate
// (an issue or a renewal: other files) is served without a reload: by the
// next handshake after Apply returns, or, where nginx caches certificates
// (ssl_certificate_cache), once the cached entry is checked again
// (certificateCache's valid=10s).
func TestCertificateRenewalNeedsNoReload(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	var files []CertFiles
	for _, d := range []string{"certs", "renewed"} {
		dir := filepath.Join(f.dir, d)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		c, _ := certFiles(t, s, dir, "tls.test")
		files = append(files, c)
	}
	first, second := files[0], files[1]
	dh := filepath.Join(f.dir, "dh.pem")
	if err := os.WriteFile(dh, sftls.FFDHE2048(), 0o644); err != nil {
		t.Fatal(err)
	}
	httpsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	plan := Plan{HTTPListen: f.listen, HTTPSListen: httpsAddr, DHParams: dh, PlaceholderRoot: f.placeholder,
		Sites: []Site{{Domain: "tls.test", TLS: &SiteTLS{Certificates: []CertFiles{first}}}}}
	mustApply(t, s, plan, true)
	run(t, s)
	serial := func() string {
		conn, err := stdtls.Dial("tcp", httpsAddr, &stdtls.Config{ServerName: "tls.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	testutil.WaitFor(t, "HTTPS", 10*time.Second, func() bool {
		conn, err := stdtls.Dial("tcp", httpsAddr, &stdtls.Config{ServerName: "tls.test", InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	before, reloads := serial(), s.Status().Reloads
	plan.Sites = slices.Clone(plan.Sites)
	plan.Sites[0].TLS = &SiteTLS{Certificates: []CertFiles{second}}
	res := apply(t, s, plan)
	if res.Changed || res.Switched != 1 {
		t.Errorf("renewal: got %+v, want one link switched and no reload", res)
	}
	if !s.opts.caps.supportsCertificateCache() {
		if after := serial(); after == before {
			t.Errorf("the handshake after the renewal still presents serial %s", before)
		}
	} else {
		took := testutil.WaitFor(t, "the renewed certificate", 20*time.Second, func() bool { return serial() != before })
		t.Logf("nginx %v caches certificates: the renewal was served after %s", s.opts.caps.version, took.Round(time.Millisecond))
	}
	if got := s.Status().Reloads; got != reloads {
		t.Errorf("reloads: got %d, want %d", got, reloads)
	}
}

// TestSiteEqualSeesEveryField guards Site.equal, which Apply uses to
// decide what changed: a field it ignored would make a change invisible.
func TestSiteEqualSeesEveryField(t *testing.T) {
	base := Site{Domain: "a.test"}
	variants := []Site{
		{Domain: "b.test"},
		{Domain: "a.test", Aliases: []string{"www.a.test"}},
		{Domain: "a.test", RedirectAliases: true},
		{Domain: "a.test", Root: "/srv/a"},
		{Domain: "a.test", RedirectHTML: true},
		{Domain: "a.test", Rules: &Rules{Redirects: []Redirect{{From: seg("a"), To: "/b", Status: 301}}}},
		{Domain: "a.test", TLS: &SiteTLS{HSTS: "max-age=1"}},
		{Domain: "a.test", Preview: true},
		{Domain: "a.test", Protected: true},
	}
	if n := reflect.TypeOf(Site{}).NumField(); n != len(variants) {
		t.Fatalf("Site has %d fields, the test covers %d: cover the new one here and in Site.equal", n, len(variants))
	}
	for _, v := range variants {
		if base.equal(v) || v.equal(base) {
			t.Errorf("equal(%+v, %+v) = true", base, v)
		}
		if !v.equal(v) {
			t.Errorf("equal(%+v, itself) = false", v)
		}
	}
	c := CertFiles{Names: []string{"a.test"}, Chain: "/c", Key: "/k"}
	tlsBase := &SiteTLS{Certificates: []CertFiles{c}}
	tlsVariants := []*SiteTLS{
		{Certificates: []CertFiles{{Names: []string{"b.test"}, Chain: "/c", Key: "/k"}}},
		{Certificates: []CertFiles{{Names: []string{"a.test"}, Chain: "/c2", Key: "/k"}}},
		{Certificates: []CertFiles{{Names: []string{"a.test"}, Chain: "/c", Key: "/k2"}}},
		{Certificates: []CertFiles{{Names: []string{"a.test"}, Chain: "/c", Key: "/k", Staple: true}}},
		{Certificates: []CertFiles{c}, RedirectHTTP: true},
		{Certificates: []CertFiles{c}, HSTS: "max-age=1"},
		nil,
	}
	if n := reflect.TypeOf(SiteTLS{}).NumField() + reflect.TypeOf(CertFiles{}).NumField() - 1; n != len(tlsVariants)-1 { // less the Certificates slice itself
		t.Fatalf("SiteTLS and CertFiles have %d fields, the test covers %d: cover the new one here and in SiteTLS.equal", n, len(tlsVariants)-1)
	}
	for _, v := range tlsVariants {
		if tlsBase.equal(v) || v.equal(tlsBase) {
			t.Errorf("equal(%+v, %+v) = true", tlsBase, v)
		}
	}
	a := Site{Domain: "a.test", TLS: &SiteTLS{HSTS: "max-age=1"}}
	b := Site{Domain: "a.test", TLS: &SiteTLS{HSTS: "max-age=1"}}
	if !a.equal(b) {
		t.Error("equal sites behind different pointers are not equal")
	}
}

// TestLinksFollowRandomPlans applies a random sequence of plans (sites
// added, removed, redeployed, aliases moving between sites, aliases turning
// to redirects, TLS on and off) and checks after each that the links on
// disk are exactly those the plan needs: the incremental link updates
// never leave a stale link or miss one.
func TestLinksFollowRandomPlans(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	dir := filepath.Join(f.dir, "certs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cert, _ := certFiles(t, s, dir, "tls.test")
	dh := filepath.Join(f.dir, "dh.pem")
	if err := os.WriteFile(dh, sftls.FFDHE2048(), 0o644); err != nil {
		t.Fatal(err)
	}
	roots := []string{"", f.site(t, "r1", map[string]string{"index.html": "1"}), f.site(t, "r2", map[string]string{"index.html": "2"})}
	rng := rand.New(rand.NewPCG(7, 8))
	for step := range 40 {
		plan := Plan{HTTPListen: f.listen, HTTPSListen: "127.0.0.1:" + strconv.Itoa(freePort(t)), DHParams: dh, PlaceholderRoot: f.placeholder}
		if step > 0 {
			plan.HTTPSListen = s.livePlan.HTTPSListen // keep the settings, so links change alone
		}
		aliases := rng.Perm(6)
		for i := range 5 {
			if rng.IntN(4) == 0 {
				continue // this site is absent from this plan
			}
			site := Site{Domain: fmt.Sprintf("s%d.test", i), Root: roots[rng.IntN(len(roots))], RedirectAliases: rng.IntN(3) == 0}
			for _, a := range aliases {
				if a%5 == i && rng.IntN(2) == 0 {
					site.Aliases = append(site.Aliases, fmt.Sprintf("a%d.test", a))
				}
			}
			if rng.IntN(3) == 0 {
				c := cert
				c.Names = []string{site.Domain}
				site.TLS = &SiteTLS{Certificates: []CertFiles{c}}
			}
			plan.Sites = append(plan.Sites, site)
		}
		if res := apply(t, s, plan); len(res.Rejected) > 0 {
			t.Fatalf("step %d: rejected %v", step, res.Rejected)
		}
		hosts, certs := s.opts.links(plan)
		checkLinks(t, step, s.opts.hostsDir(), hosts)
		checkLinks(t, step, s.opts.certsDir(), certs)
	}
}

// checkLinks compares the links in dir with want.
func checkLinks(t *testing.T, step int, dir string, want map[string]string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatalf("step %d: %s: %v", step, e.Name(), err)
		}
		got[e.Name()] = target
	}
	if !maps.Equal(got, want) {
		t.Fatalf("step %d: links in %s:\n got %v\nwant %v", step, filepath.Base(dir), got, want)
	}
}

// A plan may list its sites in any order; of a domain listed twice the
// first form applies and the repeat is named in Rejected, and Apply
// leaves the caller's plan as it was.
func TestApplyTakesPlansInAnyOrderAndRefusesRepeats(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	plan := f.twoSites(t)
	slices.Reverse(plan.Sites)
	plan.Sites = append(plan.Sites, Site{Domain: "twice.test"}, Site{Domain: "twice.test", Aliases: []string{"www.twice.test"}})
	given := slices.Clone(plan.Sites)
	res := apply(t, s, plan)
	if !strings.Contains(res.Rejected["twice.test"], "twice") || len(res.Rejected) != 1 {
		t.Errorf("Rejected = %v, want twice.test named and nothing else", res.Rejected)
	}
	if !reflect.DeepEqual(plan.Sites, given) {
		t.Errorf("Apply changed the caller's plan:\n%+v\nwas\n%+v", plan.Sites, given)
	}
	for _, name := range []string{"a.test", "www.a.test", "a.test.redirect", "p.test", "twice.test"} {
		if _, err := os.Readlink(filepath.Join(f.prefix, "hosts", name)); err != nil {
			t.Errorf("%s is not linked: %v", name, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(f.prefix, "hosts", "www.twice.test")); err == nil {
		t.Error("the repeated form of twice.test (with www.twice.test) was applied")
	}
}
