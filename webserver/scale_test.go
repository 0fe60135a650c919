package webserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestScale10000Sites renders 10,000 sites (20,000 names, some of 253
// characters), has nginx test and serve them, and checks that nginx printed
// no warning (e.g. "could not build optimal map_hash").
func TestScale10000Sites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	root := f.site(t, "shared", map[string]string{"index.html": "S"})
	plan := bigPlan(f.listen, root, f.placeholder, 10000, 20, 0)
	s := f.newServer(t, f.options())

	start := time.Now()
	files, err := s.Render(plan)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	renderTook := time.Since(start)
	if got := strings.Count(string(files[sitesFile]), "\n    \""); got != 3334 {
		t.Errorf("map entries: got %d, want 3334 (the redirecting aliases)", got)
	}
	mustApply(t, s, plan, true) // stages and runs nginx -t
	applyTook := time.Since(start) - renderTook
	run(t, s)
	tests := []struct{ host, body string }{
		{"site09999.example.test", "S"},
		{longName(7), "S"},
		{"www.site00007.example.test", "S"},
		{"nope.example.test", UnknownHostBody},
	}
	for _, tt := range tests {
		waitServing(t, f.listen, tt.host, "/", map[bool]int{true: 404, false: 200}[tt.body == UnknownHostBody], tt.body)
	}
	r := mustGet(t, f.listen, "www.site00030.example.test", "/")
	if got, want := r.header.Get("Location"), "http://site00030.example.test/"; r.status != 301 || got != want {
		t.Errorf("redirect alias: got %d %q, want 301 %q", r.status, got, want)
	}

	// A change of one site's root at this size switches a link: no reload.
	start = time.Now()
	mustApply(t, s, bigPlan(f.listen, root, f.placeholder, 10000, 20, 1), false)
	reloadTook := time.Since(start)
	waitServing(t, f.listen, longName(0), "/", 200, "placeholder\n")

	if logs := f.logs.String(); strings.Contains(logs, "level=WARN") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("nginx warned or failed at 10,000 sites; logs:\n%s", logs)
	}
	t.Logf("10,000 sites: render %s, first apply (stage + nginx -t) %s, root change (no reload) %s",
		renderTook, applyTook, reloadTook)
}

// TestScaleHashSizesNoWarning checks the map hash sizing against nginx -t for
// a spread of plan sizes, all names of the maximal length.
func TestScaleHashSizesNoWarning(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 100, 2500, 10001} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFixture(t)
			s := f.newServer(t, f.options())
			plan := bigPlan(f.listen, f.placeholder, f.placeholder, n, n, 0)
			plan.Sites = htmlRedirecting(plan.Sites) // into the maps: plain sites are links only
			g, err := render(plan, s.opts)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			dir := s.opts.genDir() + "/" + g.id
			if err := stageFiles(dir, g.files, true); err != nil {
				t.Fatalf("stage: %v", err)
			}
			if err := s.testConfig(context.Background(), dir); err != nil {
				t.Fatalf("nginx -t: %v", err)
			}
			if logs := f.logs.String(); strings.Contains(logs, "warn") {
				t.Errorf("nginx -t warned for %d sites of 253-character names: %s", n, logs)
			}
		})
	}
}
