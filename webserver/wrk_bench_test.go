package webserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
		waitFor(b, 10*time.Second, "nginx to run", func() bool { return s.Status().PID != 0 })
		pin(s.Status().PID)
		bare := startBare(b, f.dir, root)
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

// runWrk runs wrk for 2 s against http://addr/page.html with Host host and
// returns the requests per second.
func runWrk(b *testing.B, wrk, addr, host string) float64 {
	args := []string{"-t1", "-c50", "-d2s", "-H", "Host: " + host, "http://" + addr + "/page.html"}
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

// startBare runs nginx with a minimal config serving root, one worker
// pinned to CPU 0 when taskset exists, and returns its address.
func startBare(b *testing.B, dir, root string) string {
	d := filepath.Join(dir, "bare")
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	user := ""
	if os.Geteuid() == 0 {
		user = "user nobody " + defaultGroup() + ";"
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type text/html;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  server { listen %[3]s; root %[4]s; index index.html; }
}
`, user, d, addr, root)
	path := filepath.Join(d, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	bin, err := findBinary("")
	if err != nil {
		b.Fatal(err)
	}
	name, args := bin, []string{"-p", d, "-c", path}
	if _, err := exec.LookPath("taskset"); err == nil {
		name, args = "taskset", append([]string{"-c", "0", bin}, args...)
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGQUIT); _ = cmd.Wait() })
	waitFor(b, 10*time.Second, "bare nginx", func() bool {
		r, err := get(addr, "bare.test", "/page.html")
		return err == nil && r.status == 200
	})
	return addr
}
