package webserver

import (
	"context"
	"log/slog"
	"testing"
)

func BenchmarkRender1000(b *testing.B)  { benchmarkRender(b, 1000) }
func BenchmarkRender10000(b *testing.B) { benchmarkRender(b, 10000) }

func benchmarkRender(b *testing.B, sites int) {
	plan := bigPlan("127.0.0.1:8080", "/srv/sites/shared", "/srv/placeholder", sites, 0, 0)
	opts := Options{Prefix: "/var/lib/sitefleet/nginx", Manage: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(plan, opts); err != nil {
			b.Fatalf("Render: %v", err)
		}
	}
}

// BenchmarkApply measures one changed Apply against a running managed nginx:
// render, stage, nginx -t, swap, SIGHUP and the new generation observed.
func BenchmarkApply1000(b *testing.B)  { benchmarkApply(b, 1000) }
func BenchmarkApply10000(b *testing.B) { benchmarkApply(b, 10000) }

func benchmarkApply(b *testing.B, sites int) {
	f := newFixture(b)
	f.log = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := f.newServer(b, f.options())
	root := f.site(b, "shared", map[string]string{"index.html": "S"})
	plans := [2]Plan{
		bigPlan(f.listen, root, f.placeholder, sites, 0, 0),
		bigPlan(f.listen, root, f.placeholder, sites, 0, 1),
	}
	mustApply(b, s, plans[0], true)
	run(b, s)
	waitServing(b, f.listen, "site00001.example.test", "/", 200, "S")
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		changed, err := s.Apply(ctx, plans[i%2])
		if err != nil || !changed {
			b.Fatalf("Apply #%d: got changed=%v err=%v, want a change", i, changed, err)
		}
	}
}
