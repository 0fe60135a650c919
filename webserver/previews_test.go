package webserver

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sftls "github.com/sitefleet/sitefleet/tls"
)

// Previews are served under the preview domain, beside the live sites,
// never indexed, over HTTP and HTTPS with the previews certificate;
// adding, moving and removing one is a link switch, and one outside the
// preview domain is refused alone.
func TestPreviews(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	certDir := filepath.Join(f.dir, "certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		t.Fatal(err)
	}
	wild, roots := certFiles(t, s, certDir, "*.previews.test")
	for _, f := range []*string{&wild.Chain, &wild.Key} { // no "*" in paths nginx reads
		to := strings.ReplaceAll(*f, "*", "wildcard")
		if err := os.Rename(*f, to); err != nil {
			t.Fatal(err)
		}
		*f = to
	}
	dh := filepath.Join(f.dir, "dh.pem")
	if err := os.WriteFile(dh, sftls.FFDHE2048(), 0o644); err != nil {
		t.Fatal(err)
	}
	httpsAddr := f.listen[:strings.LastIndex(f.listen, ":")] + ":" + strconv.Itoa(freePort(t))
	live := f.site(t, "live", map[string]string{"index.html": "live"})
	v2 := f.site(t, "v2", map[string]string{"index.html": "v2", "new.html": "new"})
	v3 := f.site(t, "v3", map[string]string{"index.html": "v3"})
	plan := Plan{
		HTTPListen: f.listen, HTTPSListen: httpsAddr, DHParams: dh, PlaceholderRoot: f.placeholder,
		Previews: &Previews{Domain: "previews.test", Chain: wild.Chain, Key: wild.Key},
		Sites: []Site{
			{Domain: "a.test", Root: live},
			{Domain: "pr1--a-test.previews.test", Root: v2, Preview: true},
			{Domain: "rules--a-test.previews.test", Root: v2, Preview: true,
				Rules: &Rules{Redirects: []Redirect{{From: seg("old"), To: "/new", Status: 301}}}},
		},
	}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "a.test", "/", 200, "live")

	check := func(host, path string, status int, body, location string) {
		t.Helper()
		r := mustGet(t, f.listen, host, path)
		if r.status != status || body != "" && r.body != body || r.header.Get("Location") != location {
			t.Errorf("GET %s%s: %d %q Location %q, want %d %q %q", host, path, r.status, r.body, r.header.Get("Location"), status, body, location)
		}
		if got := r.header.Get("X-Robots-Tag"); got != "noindex" {
			t.Errorf("GET %s%s: X-Robots-Tag %q, want noindex", host, path, got)
		}
	}
	check("pr1--a-test.previews.test", "/", 200, "v2", "")
	check("pr1--a-test.previews.test", "/new", 200, "new", "")
	check("rules--a-test.previews.test", "/old", 301, "", "/new")
	check("nothing--a-test.previews.test", "/", 404, UnknownHostBody, "")
	if r := mustGet(t, f.listen, "a.test", "/"); r.body != "live" || r.header.Get("X-Robots-Tag") != "" {
		t.Errorf("live site: %q X-Robots-Tag %q", r.body, r.header.Get("X-Robots-Tag"))
	}

	// Over HTTPS, with the wildcard certificate.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for host, want := range map[string]string{"pr1--a-test.previews.test": "v2", "rules--a-test.previews.test": "v2"} {
		tr.TLSClientConfig.ServerName = host
		req, _ := http.NewRequest("GET", "https://"+httpsAddr+"/", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET https://%s/: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want || resp.Header.Get("X-Robots-Tag") != "noindex" {
			t.Errorf("GET https://%s/: %d %q X-Robots-Tag %q", host, resp.StatusCode, b, resp.Header.Get("X-Robots-Tag"))
		}
	}

	// Adding, moving and removing a preview without rules reloads nothing.
	before := s.Status()
	for _, step := range [][]Site{
		append(plan.Sites[:3:3], Site{Domain: "pr2--a-test.previews.test", Root: v3, Preview: true}),
		append(plan.Sites[:3:3], Site{Domain: "pr2--a-test.previews.test", Root: live, Preview: true}),
		plan.Sites[:3:3],
	} {
		p := plan
		p.Sites = step
		if res := apply(t, s, p); res.Changed || len(res.Rejected) > 0 {
			t.Errorf("preview step: %+v, want a link switch", res)
		}
	}
	if got := s.Status(); got.Reloads != before.Reloads {
		t.Errorf("previews reloaded nginx: %d -> %d", before.Reloads, got.Reloads)
	}

	// A preview outside the preview domain, or with options of a site, is
	// refused alone.
	p := plan
	p.Sites = append(plan.Sites[:3:3],
		Site{Domain: "x--a-test.elsewhere.test", Root: v3, Preview: true},
		Site{Domain: "y--a-test.previews.test", Root: v3, Preview: true, RedirectHTML: true},
		Site{Domain: "z.x--a-test.previews.test", Root: v3, Preview: true},
		Site{Domain: "b.test", Root: v3})
	res := apply(t, s, p)
	for _, bad := range []string{"x--a-test.elsewhere.test", "y--a-test.previews.test", "z.x--a-test.previews.test"} {
		if res.Rejected[bad] == "" {
			t.Errorf("%s was not rejected: %+v", bad, res)
		}
	}
	waitServing(t, f.listen, "b.test", "/", 200, "v3")
}
