package webserver

import (
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/protect"
)

// BenchmarkServeWrkProtected measures what protection costs a logged-in
// visitor: the same 1 KiB page from a protected site, with the right
// credentials (each request an auth subrequest to a protect.Checker on
// loopback that remembers the login), against an open site on the same
// nginx, with wrk as in BenchmarkServeWrk; the figure is the median of
// nine alternating rounds' ratios. The checker runs in this process,
// beside wrk on CPU 1, as a node beside nginx would.
func BenchmarkServeWrkProtected(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is required: apt-get install -y wrk (make bench installs it)")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), 10)
	if err != nil {
		b.Fatal(err)
	}
	checker := protect.New(protect.Options{HostHeader: AuthHostHeader, URIHeader: AuthURIHeader, Gates: func(host string) (protect.Gate, bool) {
		return protect.Gate{Realm: host, Logins: func(string) []protect.Login {
			return []protect.Login{{User: "u", Hash: string(hash)}}
		}}, host == "p.test"
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &http.Server{Handler: checker}
	go up.Serve(ln)
	defer up.Close()
	for b.Loop() {
		f := newFixture(b)
		opts := f.options()
		opts.WorkerProcesses = "1"
		s := f.newServer(b, opts)
		page := strings.Repeat("x", 1024)
		root := f.site(b, "r", map[string]string{"page.html": page})
		plan := Plan{HTTPListen: f.listen, PlaceholderRoot: f.placeholder, AuthUpstream: ln.Addr().String(),
			Sites: []Site{{Domain: "o.test", Root: root}, {Domain: "p.test", Root: root, Protected: true}}}
		mustApply(b, s, plan, true)
		run(b, s)
		waitServing(b, f.listen, "o.test", "/page.html", 200, page)
		testutil.WaitFor(b, "nginx to run", 10*time.Second, func() bool { return s.Status().PID != 0 })
		pin(s.Status().PID)
		if r := mustGet(b, f.listen, "p.test", "/page.html"); r.status != 401 {
			b.Fatalf("protected without credentials: %d", r.status)
		}
		var ratios, prot, open []float64
		for range 9 {
			p := runWrk(b, wrk, f.listen, "p.test", "Authorization: Basic dTpwdw==") // u:pw
			o := runWrk(b, wrk, f.listen, "o.test")
			prot, open, ratios = append(prot, p), append(open, o), append(ratios, p/o)
		}
		b.ReportMetric(median(prot), "protected-rps")
		b.ReportMetric(median(open), "open-rps")
		b.ReportMetric(median(ratios), "ratio")
		b.ReportMetric(0, "ns/op")
	}
}
