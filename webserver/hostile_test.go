package webserver

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

// rawGet sends target exactly as given (no re-encoding) with Host host on a
// fresh connection and returns the parsed response and its body, or an
// error when nginx closed the connection without a parsable answer.
func rawGet(addr, host, target string) (*http.Response, string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host); err != nil {
		return nil, "", err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// hostilePaths are request targets an attacker sends: encoded CR, LF and
// NUL, doubled and back slashes, dot segments and very long paths, each
// under the given prefix.
func hostilePaths(prefix string) []string {
	tails := []string{
		"a%0d%0aSet-Cookie:%20x=y",
		"a%0aSet-Cookie:%20x=y",
		"a%0dSet-Cookie:%20x=y",
		"%0d%0aX-Injected:%201",
		"a%00b",
		"a%0d%0a%0d%0a<html>",
		"/evil.example/",
		"//evil.example/",
		"%2F%2Fevil.example/",
		"%2fevil.example",
		"%5Cevil.example/",
		"%5C%5Cevil.example/",
		"\\evil.example/",
		"%09/evil.example",
		"..%2F..%2Fetc%2Fpasswd",
		"../../../../etc/passwd",
		"%2e%2e/%2e%2e/x",
		"a?%0d%0aX-Injected:%201",
		"a/%0d%0aX-Injected:1.html",
		strings.Repeat("a", 4000),
		strings.Repeat("%0d%0a", 300),
		"%E2%80%A8x%C2%85y",
		"%ff%fe",
	}
	out := make([]string, 0, len(tails))
	for _, t := range tails {
		out = append(out, prefix+t)
	}
	return out
}

// checkSafeResponse fails when resp carries a header the attacker chose or
// a Location that leaves host (other than to allowedHost, a host a rule
// names itself).
func checkSafeResponse(t *testing.T, host, target string, resp *http.Response, allowedHost string) {
	t.Helper()
	for name, values := range resp.Header {
		switch strings.ToLower(name) {
		case "set-cookie", "x-injected":
			t.Errorf("GET %q (Host %s): injected header %s: %q", target, host, name, values)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				t.Errorf("GET %q (Host %s): header %s carries a control character: %q", target, host, name, v)
			}
		}
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return
	}
	if got := locationHost(host, loc); got != host && got != allowedHost {
		t.Errorf("GET %q (Host %s): Location %q leaves the site for %q", target, host, loc, got)
	}
}

// locationHost is the host a browser goes to when it follows loc from a
// page of host: it drops tabs and newlines and reads "\\" as "/" (WHATWG URL
// parsing of http URLs), so "/\\evil.example" is evil.example.
func locationHost(host, loc string) string {
	n := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		if r == '\\' {
			return '/'
		}
		return r
	}, strings.TrimSpace(loc))
	lower := strings.ToLower(n)
	switch {
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		n = n[strings.Index(n, ":")+1:]
		n = "//" + strings.TrimLeft(n, "/")
	case strings.HasPrefix(n, "//"):
		n = "//" + strings.TrimLeft(n, "/")
	default:
		if i := strings.IndexAny(n, "/?#"); i != 0 && strings.Contains(n[:max(i, 0)], ":") {
			return "scheme:" + n // another scheme, such as javascript:
		}
		return host
	}
	authority := n[2:]
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	if h, _, err := net.SplitHostPort(authority); err == nil {
		authority = h
	}
	return strings.ToLower(authority)
}

// TestHostileRequestsNeitherInjectNorRedirectOffSite sends hostile paths
// to every kind of rule and option that builds a response header from the
// request, and checks that no response carries an injected header and
// that no Location leaves the site, except to the host a rule names.
func TestHostileRequestsNeitherInjectNorRedirectOffSite(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	root := f.site(t, "r", map[string]string{"index.html": "R", "x.html": "x", "users.html": "u"})
	rules := &Rules{
		Redirects: []Redirect{
			{From: seg("u", ":name"), To: "/users/:name", Status: 301},
			{From: seg("first", ":name"), To: "/:name", Status: 302},
			{From: seg("go", ":slug"), To: "https://example.org/:slug", Status: 302, Force: true},
			{From: seg("old", "*"), To: "/:splat", Status: 301},
			{From: seg("forced", "*"), To: "/:splat", Status: 308, Force: true},
			{From: seg("rw", "*"), To: "/index.html", Status: 200},
			{From: seg("nf", ":p"), To: "/x.html", Status: 404},
		},
		Headers: []HeaderRule{{Path: seg("*"), Headers: []Header{{"X-Frame-Options", "DENY"}}}},
	}
	plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, Sites: []Site{
		{Domain: "rules.test", Root: root, Rules: rules, RedirectHTML: true, Aliases: []string{"old.rules.test"}, RedirectAliases: true},
		{Domain: "plain.test", Root: root, RedirectHTML: true, Aliases: []string{"www.plain.test", "old.plain.test"}},
		{Domain: "moved.test", Root: root, Aliases: []string{"old.moved.test"}, RedirectAliases: true},
	}}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "rules.test", "/", 200, "R")

	var targets []string
	for _, p := range []string{"/u/", "/first/", "/go/", "/old/", "/forced/", "/rw/", "/nf/", "/", "//", "/x/"} {
		targets = append(targets, hostilePaths(p)...)
	}
	for _, p := range []string{"//evil.example/x.html", "///evil.example/x.html", "/%5Cevil.example/x.html",
		"/\\evil.example/x.html", "/%2F%2Fevil.example/x.html", "//evil.example/index.html", "/x.html?%0d%0aSet-Cookie:x=y",
		"/x.html?a\\b", "http://evil.example/x.html", "http://rules.test//evil.example/x.html"} {
		targets = append(targets, p)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"/", "//", "\\", "%5C", "%5c", "%2F", "%0d", "%0a", "%00", "%09", "%20", ".", "..", "%2e", "evil.example", "Set-Cookie:x=y", "?", "#", "@", ":", ".html", "index.html", "%ff"}
	for range 400 {
		var b strings.Builder
		b.WriteString([]string{"/u/", "/first/", "/go/", "/old/", "/forced/", "/", "//"}[rng.IntN(7)])
		for range 1 + rng.IntN(6) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		targets = append(targets, b.String())
	}
	sent, answered := 0, 0
	for _, h := range []string{"rules.test", "old.rules.test", "plain.test", "www.plain.test", "old.moved.test"} {
		for _, target := range targets {
			host := h
			sent++
			resp, _, err := rawGet(f.listen, h, target)
			if err != nil {
				continue // nginx refused the request line outright: nothing to inject into
			}
			answered++
			if rest, ok := strings.CutPrefix(target, "http://"); ok {
				host, _, _ = strings.Cut(rest, "/") // the request line's host wins over Host
			}
			allowed := ""
			switch {
			case host == "rules.test" && strings.HasPrefix(target, "/go/"):
				allowed = "example.org"
			case host == "old.rules.test":
				allowed = "rules.test"
			case host == "old.moved.test":
				allowed = "moved.test"
			}
			checkSafeResponse(t, host, target, resp, allowed)
		}
	}
	// Most of the hostile requests reach nginx's handlers: a run where
	// nginx answered (almost) nothing would check nothing.
	if answered < sent*3/4 {
		t.Fatalf("nginx answered %d of %d requests; the checks above covered too few", answered, sent)
	}
}

// TestManifestFilesAndDotfilesAreNotServed checks that a bundle's
// _redirects, _headers and dotfiles answer 404, with or without rules of
// its own, while /.well-known/ is served.
func TestManifestFilesAndDotfilesAreNotServed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	files := map[string]string{"index.html": "home", "404.html": "not found", "_redirects": "/a /b 301\n", "_headers": "/*\n  X-A: b\n", ".env": "SECRET=1"}
	plainRoot := f.site(t, "plain", files)
	rulesRoot := f.site(t, "rules", files)
	for _, dir := range []string{".git", ".well-known"} {
		for _, root := range []string{plainRoot, rulesRoot} {
			writeFiles(t, root+"/"+dir, map[string]string{"config": "secret config", "security.txt": "contact"})
		}
	}
	rules := &Rules{Redirects: []Redirect{{From: seg("app", "*"), To: "/index.html", Status: 200, Force: true}, {From: seg("*"), To: "/index.html", Status: 200}}}
	plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, Sites: []Site{
		{Domain: "plain.test", Root: plainRoot},
		{Domain: "rules.test", Root: rulesRoot, Rules: rules},
	}}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "plain.test", "/", 200, "home")
	for _, host := range []string{"plain.test", "rules.test"} {
		for _, path := range []string{"/_redirects", "/_headers", "/%5Fredirects", "/.env", "/.git/config", "/%2Egit/config", "/.well-known/../.env"} {
			r := mustGet(t, f.listen, host, path)
			if r.status != 404 || r.body != "not found" {
				t.Errorf("GET %s%s: got %d %q, want 404 with the site's 404 page", host, path, r.status, r.body)
			}
		}
		if r := mustGet(t, f.listen, host, "/.well-known/security.txt"); r.status != 200 || r.body != "contact" {
			t.Errorf("GET %s/.well-known/security.txt: got %d %q, want 200 %q", host, r.status, r.body, "contact")
		}
	}
	// A forced rewrite whose target matches its own pattern serves the
	// target instead of looping.
	for _, path := range []string{"/app/x", "/app/index.html"} {
		if r := mustGet(t, f.listen, "rules.test", path); r.status != 200 || r.body != "home" {
			t.Errorf("GET rules.test%s: got %d %q, want the rewrite's target", path, r.status, r.body)
		}
	}
}

// TestRootChangesNeedNoReload checks that a deploy (a site's root
// changes), adding a plain site or a serving alias, and removing them are
// served as soon as Apply returns, without a reload: same generation,
// same workers, no reload counted.
func TestRootChangesNeedNoReload(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	v1 := f.site(t, "v1", map[string]string{"index.html": "v1"})
	v2 := f.site(t, "v2", map[string]string{"index.html": "v2"})
	plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, Sites: []Site{{Domain: "a.test", Root: v1, RedirectHTML: true}}}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "a.test", "/", 200, "v1")
	testutil.WaitFor(t, "nginx to run", 10*time.Second, func() bool { return s.Status().PID != 0 })
	st := s.Status()
	workers := childPIDs(st.PID)

	steps := []struct {
		name  string
		sites []Site
		want  map[string]string // host -> body; "" is the unknown-host answer
	}{
		{"deploy", []Site{{Domain: "a.test", Root: v2, RedirectHTML: true}}, map[string]string{"a.test": "v2"}},
		{"rollback", []Site{{Domain: "a.test", Root: v1, RedirectHTML: true}}, map[string]string{"a.test": "v1"}},
		{"add plain site", []Site{{Domain: "a.test", Root: v1, RedirectHTML: true}, {Domain: "b.test", Root: v2}}, map[string]string{"a.test": "v1", "b.test": "v2"}},
		{"add serving alias", []Site{{Domain: "a.test", Root: v1, RedirectHTML: true}, {Domain: "b.test", Root: v2, Aliases: []string{"www.b.test"}}}, map[string]string{"www.b.test": "v2"}},
		{"placeholder", []Site{{Domain: "a.test", Root: v1, RedirectHTML: true}, {Domain: "b.test", Aliases: []string{"www.b.test"}}}, map[string]string{"www.b.test": "placeholder\n"}},
		{"remove", []Site{{Domain: "a.test", Root: v1, RedirectHTML: true}}, map[string]string{"b.test": "", "www.b.test": "", "a.test": "v1"}},
	}
	for _, step := range steps {
		plan.Sites = step.sites
		res := apply(t, s, plan)
		if res.Changed || res.Switched == 0 {
			t.Errorf("%s: got %+v, want links switched without a reload", step.name, res)
		}
		for host, body := range step.want {
			r := mustGet(t, f.listen, host, "/")
			if body == "" && (r.status != 404 || r.body != UnknownHostBody) || body != "" && (r.status != 200 || r.body != body) {
				t.Errorf("%s: GET %s right after Apply: got %d %q, want %q", step.name, host, r.status, r.body, body)
			}
		}
	}
	if got := s.Status(); got.Generation != st.Generation || got.Reloads != st.Reloads || !slices.Equal(childPIDs(got.PID), workers) {
		t.Errorf("after the changes: generation %s reloads %d workers %v; want %s, %d, %v (no reload)", got.Generation, got.Reloads, childPIDs(got.PID), st.Generation, st.Reloads, workers)
	}
}

// TestCleanURLs checks how paths map to files now that the static handler
// answers first: a file wins, then name.html, then a directory's index;
// a directory without the slash redirects to it; a miss is the site's
// 404 page, or a plain 404 without one.
func TestCleanURLs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	root := f.site(t, "c", map[string]string{"index.html": "home", "about.html": "about", "404.html": "custom 404"})
	writeFiles(t, root+"/docs", map[string]string{"index.html": "docs"})
	bare := f.site(t, "bare", map[string]string{"index.html": "bare home"})
	plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, Sites: []Site{{Domain: "c.test", Root: root}, {Domain: "bare.test", Root: bare}}}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "c.test", "/", 200, "home")
	for _, tc := range []struct {
		host, path     string
		status         int
		body, location string
	}{
		{"c.test", "/about", 200, "about", ""},
		{"c.test", "/about.html", 200, "about", ""},
		{"c.test", "/docs/", 200, "docs", ""},
		{"c.test", "/docs", 301, "", "/docs/"},
		{"c.test", "/nope", 404, "custom 404", ""},
		{"c.test", "/docs/nope", 404, "custom 404", ""},
		{"bare.test", "/nope", 404, "404 page not found\n", ""},
		{"unknown.test", "/about", 404, UnknownHostBody, ""},
	} {
		r := mustGet(t, f.listen, tc.host, tc.path)
		if r.status != tc.status || (tc.body != "" && r.body != tc.body) || r.header.Get("Location") != tc.location {
			t.Errorf("GET %s%s: got %d %q Location %q, want %d %q %q", tc.host, tc.path, r.status, r.body, r.header.Get("Location"), tc.status, tc.body, tc.location)
		}
	}
}

// TestHostileHostHeaders checks that a Host header cannot reach a file
// outside the linked document roots: nginx serves root <prefix>/hosts/$host.
func TestHostileHostHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	root := f.site(t, "a", map[string]string{"index.html": "A"})
	writeFiles(t, f.prefix, map[string]string{"index.html": "prefix file"})
	writeFiles(t, filepath.Join(f.prefix, "links.tmp"), map[string]string{"index.html": "tmp file"})
	mustApply(t, s, Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, Sites: []Site{{Domain: "a.test", Root: root}}}, true)
	run(t, s)
	waitServing(t, f.listen, "a.test", "/", 200, "A")
	for _, host := range []string{"..", "../..", "a.test/..", "a.test/../..", ".", "%2e%2e", "..%2f..", "hosts", "links.tmp",
		"../links.tmp", "a.test\\..\\..", "[::1]", "a.test.", "A.TEST", "a.test:80", "_", "*", ".a.test", "a..test", "\u00e0.test"} {
		resp, got, err := rawGet(f.listen, host, "/index.html")
		if err != nil {
			if slices.Contains([]string{"hosts", "links.tmp", "_", "A.TEST", "a.test:80"}, host) {
				t.Errorf("Host %q: no answer (%v); nginx accepts this Host and must answer", host, err)
			}
			continue // refused outright
		}
		switch {
		case resp.StatusCode == 400:
		case resp.StatusCode == 404 && got == UnknownHostBody:
		case resp.StatusCode == 200 && got == "A" && (host == "a.test." || host == "A.TEST" || host == "a.test:80"):
		default:
			t.Errorf("Host %q: got %d %q, want 400 or the unknown-host answer", host, resp.StatusCode, got)
		}
	}
}
