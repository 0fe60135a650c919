package webserver

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/protect"
)

// A protected site asks the auth upstream about every request, with the
// host, the target as sent and the client's credentials; a 401 reaches the
// client with the upstream's challenge, and the readiness path is never
// protected. The upstream's answers change without a reload.
func TestProtectedSites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	var mu sync.Mutex
	password := "Basic YTpi" // a:b
	var seen []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.URL.Path+" "+r.Header.Get(AuthHostHeader)+" "+r.Header.Get(AuthURIHeader))
		if r.Header.Get("Authorization") == password {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="a.test", charset="UTF-8"`)
		w.WriteHeader(http.StatusUnauthorized)
	})}
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })

	root := f.site(t, "a", map[string]string{"index.html": "secret", "new.html": "new"})
	plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, AuthUpstream: ln.Addr().String(),
		Sites: []Site{
			{Domain: "a.test", Root: root, Protected: true},
			{Domain: "r.test", Root: root, Protected: true, Rules: &Rules{Redirects: []Redirect{{From: seg("old"), To: "/new", Status: 301}}}},
			{Domain: "open.test", Root: root},
		}}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "open.test", "/", 200, "secret")

	req := func(host, path, auth string) (*http.Response, string) {
		t.Helper()
		r, err := http.NewRequest("GET", "http://"+f.listen+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Host = host
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, host := range []string{"a.test", "r.test"} {
		resp, body := req(host, "/?x=%41", "")
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="a.test", charset="UTF-8"` || strings.Contains(body, "secret") {
			t.Errorf("%s without credentials: %d %q %q", host, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		if resp, body := req(host, "/", "Basic eDp5"); resp.StatusCode != 401 || strings.Contains(body, "secret") {
			t.Errorf("%s with wrong credentials: %d %q", host, resp.StatusCode, body)
		}
		if resp, body := req(host, "/", password); resp.StatusCode != 200 || body != "secret" {
			t.Errorf("%s with credentials: %d %q", host, resp.StatusCode, body)
		}
		if resp, _ := req(host, HealthPath, ""); resp.StatusCode == 401 {
			t.Errorf("%s: the readiness path asks for a login", host)
		}
	}
	if resp, _ := req("r.test", "/old", password); resp.StatusCode != 301 || resp.Header.Get("Location") != "/new" {
		t.Errorf("rules of a protected site: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := req("open.test", "/", ""); resp.StatusCode != 200 || body != "secret" {
		t.Errorf("an open site: %d %q", resp.StatusCode, body)
	}
	if resp, _ := req("a.test", authLocation, password); resp.StatusCode != 404 {
		t.Errorf("the auth location from outside: %d, want 404", resp.StatusCode)
	}
	mu.Lock()
	first := seen[0]
	mu.Unlock()
	if first != AuthPath+" a.test /?x=%41" {
		t.Errorf("the upstream saw %q", first)
	}

	// New credentials at the upstream: no reload, served at once.
	before := s.Status().Reloads
	mu.Lock()
	password = "Basic Yzpk" // c:d
	mu.Unlock()
	if resp, _ := req("a.test", "/", "Basic YTpi"); resp.StatusCode != 401 {
		t.Errorf("old credentials: %d", resp.StatusCode)
	}
	if resp, _ := req("a.test", "/", "Basic Yzpk"); resp.StatusCode != 200 {
		t.Errorf("new credentials: %d", resp.StatusCode)
	}
	if s.Status().Reloads != before {
		t.Error("nginx reloaded")
	}

	// Without an upstream, a protected site is refused alone.
	p := plan
	p.AuthUpstream = ""
	p.Sites = []Site{plan.Sites[2], {Domain: "b.test", Root: root, Protected: true}}
	res := apply(t, s, p)
	if res.Rejected["b.test"] == "" {
		t.Errorf("protected site without an upstream: %+v", res)
	}
}

// Generated hostile targets against a site that protects /admin/* and
// /team.html, through nginx and the real checker: no response without
// credentials carries a protected file's content, whatever the spelling
// (escapes, dot segments, slashes, "#", clean URLs, indexes).
func TestProtectedPathsGenerative(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	checker := protect.New(protect.Options{HostHeader: AuthHostHeader, URIHeader: AuthURIHeader, Gates: func(host string) (protect.Gate, bool) {
		return protect.Gate{Realm: host, Logins: func(p string) []protect.Login {
			if model.MatchPaths([]string{"/admin/*", "/team.html"}, p) {
				return []protect.Login{{User: "u", Password: "p"}}
			}
			return nil
		}}, host == "a.test"
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: checker}
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })
	root := f.site(t, "a", map[string]string{"index.html": "open", "team.html": "SECRET-team", "public.html": "open"})
	writeFiles(t, root+"/admin", map[string]string{"index.html": "SECRET-index", "x.html": "SECRET-x"})
	writeFiles(t, root+"/public", map[string]string{"index.html": "open"})
	plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, AuthUpstream: ln.Addr().String(),
		Sites: []Site{{Domain: "a.test", Root: root, Protected: true}}}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "a.test", "/public/", 200, "open")

	pieces := []string{"/", "//", "admin", "%61dmin", "%61%64%6d%69%6e", "ADMIN", "team", "te%61m", ".html", "%2ehtml", "index.html",
		"x", "x.html", "..", "%2e%2e", ".", "%2e", "public", "%2f", "%2F", "#", "%23", "?", "?a=/../admin", ";", "%00", "%20", "\\", "~"}
	r := rand.New(rand.NewPCG(7, 13))
	for range 400 {
		var b strings.Builder
		b.WriteString("/")
		for range 1 + r.IntN(6) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		target := b.String()
		conn, err := net.Dial("tcp", f.listen)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			continue // nginx closed a request it refused outright
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if strings.Contains(string(body), "SECRET") {
			t.Errorf("GET %q without credentials: %d %q", target, resp.StatusCode, body)
		}
	}
}
