package webserver

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
		res, err := s.Apply(ctx, plans[i%2])
		if err != nil || !res.Changed {
			b.Fatalf("Apply #%d: got changed=%v err=%v, want a change", i, res.Changed, err)
		}
	}
}

// BenchmarkConfigTest compares what nginx spends loading the generated
// config (one catch-all server and host maps) with a naive config of one
// server block per site, for the same plan: `nginx -t` parses and builds
// everything a reload does, so its time is the reload's config cost. It
// reports both in milliseconds and their ratio.
func BenchmarkConfigTest(b *testing.B) {
	for _, sites := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			f := newFixture(b)
			root := f.site(b, "shared", map[string]string{"index.html": "S"})
			plan := bigPlan(f.listen, root, f.placeholder, sites, 0, 0)
			s := f.newServer(b, f.options())
			files, err := s.Render(plan)
			if err != nil {
				b.Fatal(err)
			}
			ours := writeGeneration(b, filepath.Join(f.dir, "ours"), files)
			naive := writeGeneration(b, filepath.Join(f.dir, "naive"), map[string][]byte{
				"nginx.conf": naiveConfig(plan, f.prefix),
				"mime.types": files["mime.types"],
			})
			var oursTotal, naiveTotal time.Duration
			for b.Loop() {
				oursTotal += timeNginxTest(b, s, f.prefix, ours)
				naiveTotal += timeNginxTest(b, s, f.prefix, naive)
			}
			o := float64(oursTotal.Microseconds()) / 1000 / float64(b.N)
			nv := float64(naiveTotal.Microseconds()) / 1000 / float64(b.N)
			b.ReportMetric(o, "generated-ms")
			b.ReportMetric(nv, "naive-ms")
			b.ReportMetric(nv/o, "naive/generated")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func writeGeneration(b *testing.B, dir string, files map[string][]byte) string {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return filepath.Join(dir, "nginx.conf")
}

func timeNginxTest(b *testing.B, s *Server, prefix, conf string) time.Duration {
	b.Helper()
	start := time.Now()
	out, err := exec.Command(s.opts.Binary, "-t", "-q", "-p", prefix+"/", "-c", conf).CombinedOutput()
	if err != nil {
		b.Fatalf("nginx -t %s: %v: %s", conf, err, out)
	}
	return time.Since(start)
}

// naiveConfig is the design sitefleet avoids: a server block per site, and
// one per redirecting alias.
func naiveConfig(plan Plan, prefix string) []byte {
	var w strings.Builder
	fmt.Fprintf(&w, "pid %s/run/naive.pid;\nerror_log stderr warn;\nevents { worker_connections 1024; }\nhttp {\n", prefix)
	fmt.Fprintf(&w, "include mime.types;\nserver_names_hash_max_size 65536;\nserver_names_hash_bucket_size 128;\n")
	fmt.Fprintf(&w, "client_body_temp_path %s/tmp/nb;\nproxy_temp_path %s/tmp/np;\nfastcgi_temp_path %s/tmp/nf;\nuwsgi_temp_path %s/tmp/nu;\nscgi_temp_path %s/tmp/ns;\n", prefix, prefix, prefix, prefix, prefix)
	for _, s := range plan.Sites {
		root := s.Root
		if root == "" {
			root = plan.PlaceholderRoot
		}
		names := s.Domain
		if !s.RedirectAliases {
			names += " " + strings.Join(s.Aliases, " ")
		}
		fmt.Fprintf(&w, "server {\n listen %s;\n server_name %s;\n root %s;\n index index.html;\n location / { try_files $uri $uri/ =404; }\n}\n", plan.HTTPListen, names, root)
		if s.RedirectAliases && len(s.Aliases) > 0 {
			fmt.Fprintf(&w, "server {\n listen %s;\n server_name %s;\n return 301 $scheme://%s$request_uri;\n}\n", plan.HTTPListen, strings.Join(s.Aliases, " "), s.Domain)
		}
	}
	w.WriteString("}\n")
	return []byte(w.String())
}
