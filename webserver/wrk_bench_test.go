package webserver

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/traffic"
)

// BenchmarkServeWrk compares, with wrk (50 connections, one thread), the
// requests per second of a 1 KiB page served through the generated config
// with bare nginx serving the same file with a minimal config. Each nginx
// runs one worker; with taskset both are pinned to CPU 0 and wrk to CPU 1,
// so nginx is the bottleneck. The rounds alternate and the figure is the
// median of the per-round ratios: this machine's noise is a few percent
// per round.
func BenchmarkServeWrk(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is required: apt-get install -y wrk (make bench installs it)")
	}
	for b.Loop() {
		f := newFixture(b)
		opts := f.options()
		opts.WorkerProcesses = "1"
		s := f.newServer(b, opts)
		root := f.site(b, "r", map[string]string{"page.html": strings.Repeat("x", 1024)})
		plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, Sites: []Site{{Domain: "r.test", Root: root}}}
		mustApply(b, s, plan, true)
		run(b, s)
		waitServing(b, f.listen, "r.test", "/page.html", 200, strings.Repeat("x", 1024))
		testutil.WaitFor(b, "nginx to run", 10*time.Second, func() bool { return s.Status().PID != 0 })
		pin(s.Status().PID)
		bare := testutil.BareNginx(b, root, "1", "0")
		var ratios, ours, base []float64
		for range 9 {
			o := runWrk(b, wrk, f.listen, "r.test")
			g := runWrk(b, wrk, bare, "bare.test")
			ours, base, ratios = append(ours, o), append(base, g), append(ratios, o/g)
		}
		b.ReportMetric(median(ours), "sitefleet-rps")
		b.ReportMetric(median(base), "bare-nginx-rps")
		b.ReportMetric(median(ratios), "ratio")
		b.ReportMetric(0, "ns/op")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// pin moves an nginx master's workers to CPU 0, if taskset exists.
func pin(master int) {
	if _, err := exec.LookPath("taskset"); err != nil {
		return
	}
	for _, w := range childPIDs(master) {
		_ = exec.Command("taskset", "-cp", "0", strconv.Itoa(w)).Run()
	}
}

// runWrk runs wrk for 2 s against http://addr/page.html with Host host
// (and any further headers) and returns the requests per second.
func runWrk(b *testing.B, wrk, addr, host string, headers ...string) float64 {
	args := []string{"-t1", "-c50", "-d2s", "-H", "Host: " + host}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, "http://"+addr+"/page.html")
	cmd := exec.Command(wrk, args...)
	if _, err := exec.LookPath("taskset"); err == nil {
		cmd = exec.Command("taskset", append([]string{"-c", "1", wrk}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Requests/sec:"); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	b.Fatalf("no Requests/sec in wrk's output:\n%s", out)
	return 0
}

// BenchmarkServeWrkTraffic measures what per-site traffic metrics cost:
// the same page through the generated config with the traffic log on
// (and a traffic.Collector reading it every second into per-site
// counters, as the node does) against the generated config with access
// logging off, with wrk as in BenchmarkServeWrk; the figure is the median
// of nine alternating rounds' ratios.
func BenchmarkServeWrkTraffic(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is required: apt-get install -y wrk (make bench installs it)")
	}
	for b.Loop() {
		var addrs [2]string // [off, on]
		var logPath string
		for i := range addrs {
			f := newFixture(b)
			opts := f.options()
			opts.WorkerProcesses = "1"
			if i == 1 {
				logPath = filepath.Join(f.prefix, "logs", "traffic.log")
				opts.TrafficLog = logPath
			}
			s := f.newServer(b, opts)
			root := f.site(b, "r", map[string]string{"page.html": strings.Repeat("x", 1024)})
			mustApply(b, s, Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, Sites: []Site{{Domain: "r.test", Root: root}}}, true)
			run(b, s)
			waitServing(b, f.listen, "r.test", "/page.html", 200, strings.Repeat("x", 1024))
			testutil.WaitFor(b, "nginx to run", 10*time.Second, func() bool { return s.Status().PID != 0 })
			pin(s.Status().PID)
			addrs[i] = f.listen
		}
		c := traffic.New(traffic.Options{Path: logPath, Sites: oneSite("r.test")})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(ctx) }()
		var ratios, on, off []float64
		for range 9 {
			o := runWrk(b, wrk, addrs[1], "r.test")
			g := runWrk(b, wrk, addrs[0], "r.test")
			on, off, ratios = append(on, o), append(off, g), append(ratios, o/g)
		}
		cancel()
		<-done
		if err := c.ReadOnce(); err != nil {
			b.Fatal(err)
		}
		counted := countedRequests(b, c)
		b.ReportMetric(median(on), "traffic-on-rps")
		b.ReportMetric(median(off), "traffic-off-rps")
		b.ReportMetric(median(ratios), "ratio")
		b.ReportMetric(counted, "requests-counted")
		b.ReportMetric(0, "ns/op")
	}
}

type oneSite string

func (s oneSite) SiteOf(host string) (string, bool, bool) {
	return string(s), false, host == string(s)
}

// countedRequests sums sitefleet_site_requests_total over c's series.
func countedRequests(b *testing.B, c *traffic.Collector) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "sitefleet_site_requests_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
