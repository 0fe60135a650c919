package webserver

import (
	"strings"
	"testing"
)

// The health path answers on every host, known or not, in the catch-all
// and in a site's own server (whose rules match everything), from the
// ready file alone: no reload.
func TestHealthPath(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.newServer(t, f.options())
	root := f.site(t, "r", map[string]string{"index.html": "R"})
	rules := &Rules{Redirects: []Redirect{
		{From: seg("*"), To: "https://elsewhere.example/:splat", Status: 301, Force: true},
	}}
	plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, Sites: []Site{
		{Domain: "rules.test", Root: root, Rules: rules},
		{Domain: "plain.test", Root: root, Aliases: []string{"old.plain.test"}, RedirectAliases: true, RedirectHTML: true},
	}}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "plain.test", "/", 200, "R")
	hosts := []string{"rules.test", "plain.test", "old.plain.test", "unknown.test", ""}
	check := func(status int, body string) {
		t.Helper()
		for _, h := range hosts {
			r := mustGet(t, f.listen, h, HealthPath)
			if r.status != status || r.body != body || !strings.Contains(r.header.Get("Cache-Control"), "no-store") || r.header.Get("Location") != "" {
				t.Errorf("host %q: %d %q %v", h, r.status, r.body, r.header)
			}
		}
	}
	check(503, "not ready\n")
	reloads := s.Status().Reloads
	if err := s.SetReady(true); err != nil {
		t.Fatal(err)
	}
	check(200, "ready\n")
	if err := s.SetReady(false); err != nil {
		t.Fatal(err)
	}
	check(503, "not ready\n")
	if s.Status().Reloads != reloads {
		t.Fatal("readiness changes reloaded nginx")
	}
}
