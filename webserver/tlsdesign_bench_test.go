package webserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sftls "github.com/sitefleet/sitefleet/tls"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

// BenchmarkTLSDesign compares two ways of serving N HTTPS sites, each with
// its own certificate, from nginx (TLS 1.2 + 1.3, Mozilla intermediate,
// http2):
//
//   - server-per-site: one server{} per site with static ssl_certificate
//     files, plus a default server with ssl_reject_handshake. The master
//     loads every certificate (one SSL_CTX per server) at start and reload.
//   - cert-per-handshake: one default server whose ssl_certificate and
//     ssl_certificate_key are variables from maps keyed on $ssl_server_name.
//     nginx 1.22 has no certificate cache, so each full handshake reads and
//     parses the site's two files in the worker. An unknown name (or no
//     SNI) maps to "", which nginx resolves to the prefix directory: the
//     handshake fails with an internal_error alert and nginx logs an
//     [error] "cannot load certificate" line per handshake.
//   - cert-per-handshake+reject: the same, but the variable server lists
//     every name in server_name and a default server rejects other names
//     (unrecognized_name alert, logged at info only).
//
// For each it reports the `nginx -t` time (the config cost of a reload), the
// time from SIGHUP until new workers serve and the old ones stopped
// accepting, the master's RSS after start and after that reload, and full
// handshakes per second (no resumption; names spread over all sites) from
// tlsClients goroutines, with the worker's CPU time per handshake. nginx runs
// one worker so that the in-process client does not starve it on small
// machines; the CPU time per handshake is the figure that carries over.
func BenchmarkTLSDesign(b *testing.B) {
	for _, sites := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			certs := genSiteCerts(b, filepath.Join(tempDir(b), "certs"), sites)
			for _, d := range tlsDesigns {
				b.Run("design="+d.name, func(b *testing.B) { benchmarkTLSDesign(b, d, certs) })
			}
		})
	}
}

const (
	tlsHandshakes      = 2000             // full handshakes per protocol version and iteration
	tlsClients         = 8                // client goroutines
	tlsHandshakeBudget = 60 * time.Second // bound on one batch
	tlsNginxDeadline   = 2 * time.Minute  // bound on nginx starting or reloading
	userHZ             = 100              // unit of utime/stime in /proc/<pid>/stat
)

// Mozilla's "intermediate" settings, at http{} level so that every server's
// SSL_CTX gets them. nginx negotiates the protocol version with the default
// server's SSL_CTX before SNI selects a server, and 1.22's default
// ssl_protocols lack TLSv1.3: set only in the site servers, TLS 1.3 is never
// negotiated.
var tlsIntermediate = "    ssl_protocols " + strings.Join(intermediateProtocols(), " ") + ";\n" +
	"    ssl_ciphers " + intermediateCiphers + ";\n" +
	"    ssl_prefer_server_ciphers off;\n" +
	"    ssl_session_cache shared:SSL:10m;\n" +
	"    ssl_session_tickets off;\n"

type tlsDesign struct {
	name string
	// servers renders the servers (and maps) inside http{}.
	servers func(w *strings.Builder, listen, root string, c *siteCerts)
	// perHandshake: workers read the key files, so they must be readable by
	// the worker user.
	perHandshake bool
}

var tlsDesigns = []tlsDesign{
	{name: "server-per-site", servers: serverPerSite},
	{name: "cert-per-handshake", servers: certPerHandshake(false), perHandshake: true},
	{name: "cert-per-handshake+reject", servers: certPerHandshake(true), perHandshake: true},
}

func serverPerSite(w *strings.Builder, listen, root string, c *siteCerts) {
	fmt.Fprintf(w, "    server {\n        listen %s ssl http2 default_server;\n        ssl_reject_handshake on;\n    }\n", listen)
	for i, name := range c.names {
		fmt.Fprintf(w, "    server {\n        listen %s ssl http2;\n        server_name %s;\n"+
			"        ssl_certificate %s;\n        ssl_certificate_key %s;\n        root %s;\n    }\n",
			listen, name, c.crt(i), c.key(i), root)
	}
}

func certPerHandshake(reject bool) func(w *strings.Builder, listen, root string, c *siteCerts) {
	return func(w *strings.Builder, listen, root string, c *siteCerts) {
		for _, m := range []struct {
			variable string
			path     func(int) string
		}{{"$sf_cert", c.crt}, {"$sf_key", c.key}} {
			fmt.Fprintf(w, "    map $ssl_server_name %s {\n        hostnames;\n        default \"\";\n", m.variable)
			for i, name := range c.names {
				fmt.Fprintf(w, "        %q %q;\n", name, m.path(i))
			}
			w.WriteString("    }\n")
		}
		listenDirective, names := listen+" ssl http2 default_server", ""
		if reject {
			fmt.Fprintf(w, "    server {\n        listen %s ssl http2 default_server;\n        ssl_reject_handshake on;\n    }\n", listen)
			listenDirective = listen + " ssl http2"
			names = "        server_name " + strings.Join(c.names, ";\n        server_name ") + ";\n"
		}
		fmt.Fprintf(w, "    server {\n        listen %s;\n%s        ssl_certificate $sf_cert;\n"+
			"        ssl_certificate_key $sf_key;\n        root %s;\n    }\n", listenDirective, names, root)
	}
}

// siteCerts are self-signed ECDSA P-256 certificates, <dir>/NNNNN.crt and
// .key for siteNNNNN.example.test. Keys are created 0600 (root-only when
// the benchmark runs as root).
type siteCerts struct {
	dir   string
	names []string
	// workersCanRead records that the keys were made readable by the
	// worker group (see benchmarkTLSDesign).
	workersCanRead bool
}

func (c *siteCerts) crt(i int) string { return filepath.Join(c.dir, fmt.Sprintf("%05d.crt", i)) }
func (c *siteCerts) key(i int) string { return filepath.Join(c.dir, fmt.Sprintf("%05d.key", i)) }

// name returns the k-th site name of a sequence that visits all sites
// evenly (7919 is prime, so coprime to the site counts used here).
func (c *siteCerts) name(k int) string { return c.names[k*7919%len(c.names)] }

func genSiteCerts(b *testing.B, dir string, n int) *siteCerts {
	b.Helper()
	start := time.Now()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	c := &siteCerts{dir: dir, names: make([]string, n)}
	for i := range n {
		c.names[i] = fmt.Sprintf("site%05d.example.test", i)
	}
	procs := runtime.GOMAXPROCS(0)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			for i := p; i < n && errs[p] == nil; i += procs {
				errs[p] = c.generate(i, start)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d ECDSA P-256 certificates in %s", n, time.Since(start).Round(time.Millisecond))
	return c
}

// generate writes the certificate and key of site i, valid around now.
func (c *siteCerts) generate(i int, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(i) + 1),
		Subject:               pkix.Name{CommonName: c.names[i]},
		DNSNames:              []string{c.names[i]},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.crt(i), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(c.key(i), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600)
}

// tlsNginx is an nginx master started by a benchmark.
type tlsNginx struct {
	cmd   *exec.Cmd
	done  chan struct{}
	probe string // plain-HTTP address of the probe server
	conf  string // probe.conf
}

func (n *tlsNginx) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// writeProbe makes the probe answer gen after the next (re)load.
func (n *tlsNginx) writeProbe(b *testing.B, gen int) {
	b.Helper()
	conf := fmt.Sprintf("server {\n    listen %s;\n    access_log off;\n    location = /gen {\n        return 200 \"%d\\n\";\n    }\n}\n", n.probe, gen)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
}

// awaitProbe polls the probe every 2ms until it answers gen and none of the
// workers in before still accepts connections.
func (n *tlsNginx) awaitProbe(b *testing.B, gen int, before []int) {
	b.Helper()
	want := strconv.Itoa(gen) + "\n"
	deadline := time.Now().Add(tlsNginxDeadline)
	for {
		if r, err := get(n.probe, "probe", "/gen"); err == nil && r.body == want && workersRetired(before) {
			return
		}
		if n.exited() {
			b.Fatalf("nginx exited: %v", n.cmd.ProcessState)
		}
		if time.Now().After(deadline) {
			b.Fatalf("nginx did not serve generation %d within %s", gen, tlsNginxDeadline)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// start starts nginx with prefix and conf (binary and -e support from s),
// its stderr to logs, in its own process group, and stops it at cleanup.
func (n *tlsNginx) start(b *testing.B, s *Server, logs io.Writer, prefix, conf string) {
	b.Helper()
	args := []string{"-p", prefix + "/", "-c", conf}
	if s.opts.caps.supportsErrorLogFlag() {
		args = append(args, "-e", "stderr")
	}
	n.done = make(chan struct{})
	n.cmd = exec.Command(s.opts.Binary, args...)
	n.cmd.Stderr = logs
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := n.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	b.Cleanup(func() { stopTLSNginx(b, n) })
}

func benchmarkTLSDesign(b *testing.B, d tlsDesign, certs *siteCerts) {
	f := newFixture(b)
	s := f.newServer(b, f.options()) // for the resolved binary, its capabilities and the worker user
	root := f.site(b, "shared", map[string]string{"index.html": "S"})
	confDir := filepath.Join(f.dir, "tls")
	n := &tlsNginx{probe: fmt.Sprintf("127.0.0.1:%d", freePort(b)), conf: filepath.Join(confDir, probeFile)}
	conf := writeTLSConfig(b, s, confDir, f.prefix, f.listen, root, d, certs)
	n.writeProbe(b, 1)

	start := time.Now()
	n.start(b, s, f.logs, f.prefix, conf)
	n.awaitProbe(b, 1, nil)
	startTook := time.Since(start)
	master := n.cmd.Process.Pid
	rssStart := vmRSSMB(b, master)

	if d.perHandshake && os.Geteuid() == 0 && !certs.workersCanRead {
		// Workers run as the unprivileged user and open the key per
		// handshake: a root-only key fails the handshake.
		if _, err := tlsHandshake(context.Background(), f.listen, certs.names[0], tls.VersionTLS13); err == nil {
			b.Fatalf("handshake with a 0600 root-owned key succeeded; want a failure")
		}
		testutil.WaitFor(b, "nginx to log the key permission error", 5*time.Second, func() bool {
			return strings.Contains(f.logs.String(), "Permission denied")
		})
		grantWorkerGroup(b, s, certs)
	}
	checkTLSBehaviour(b, f.listen, certs, master)

	var testTook, reloadTook time.Duration
	var rssReload float64
	var rate, cpu [2]float64
	versions := [2]uint16{tls.VersionTLS13, tls.VersionTLS12}
	gen := 1
	for b.Loop() {
		testTook += timeNginxTest(b, s, f.prefix, conf)
		for i, v := range versions {
			r, c := handshakeBatch(b, f.listen, certs.name, v, master)
			rate[i] += r
			cpu[i] += c
		}
		gen++
		n.writeProbe(b, gen)
		before := childPIDs(master)
		t0 := time.Now()
		if err := syscall.Kill(master, syscall.SIGHUP); err != nil {
			b.Fatal(err)
		}
		n.awaitProbe(b, gen, before)
		reloadTook += time.Since(t0)
		rssReload += vmRSSMB(b, master)
	}
	iters := float64(b.N)
	b.ReportMetric(startTook.Seconds(), "start-s")
	b.ReportMetric(testTook.Seconds()/iters, "nginx-t-s")
	b.ReportMetric(reloadTook.Seconds()/iters, "reload-s")
	b.ReportMetric(rssStart, "master-rss-MB")
	b.ReportMetric(rssReload/iters, "master-rss-reloaded-MB")
	b.ReportMetric(rate[0]/iters, "tls13-hs/s")
	b.ReportMetric(cpu[0]/iters, "tls13-worker-us/hs")
	b.ReportMetric(rate[1]/iters, "tls12-hs/s")
	b.ReportMetric(cpu[1]/iters, "tls12-worker-us/hs")
	b.ReportMetric(0, "ns/op")
	for _, bad := range []string{"[alert]", "[crit]", "[emerg]", "exited on signal"} {
		if strings.Contains(f.logs.String(), bad) {
			b.Errorf("nginx logged %q:\n%s", bad, f.logs.String())
		}
	}
}

// writeTLSConfig writes nginx.conf, mime.types and the servers of design d
// to dir, with sitefleet's http{} settings, and returns the nginx.conf path.
func writeTLSConfig(b *testing.B, s *Server, dir, prefix, listen, root string, d tlsDesign, c *siteCerts) string {
	b.Helper()
	var w strings.Builder
	if os.Geteuid() == 0 {
		w.WriteString("user " + s.opts.User + ";\n")
	}
	if s.opts.caps.brotliStatic != "" {
		w.WriteString("load_module " + s.opts.caps.brotliStatic + ";\n")
	}
	w.WriteString("worker_processes 1;\n")
	if canRaiseNofile() {
		fmt.Fprintf(&w, "worker_rlimit_nofile %d;\n", workerNofile)
	}
	fmt.Fprintf(&w, "pid %s;\nerror_log stderr warn;\ndaemon off;\nevents {\n    worker_connections %d;\n}\nhttp {\n",
		filepath.Join(prefix, "run", "tls.pid"), workerConnections)
	sites := make([]Site, len(c.names))
	for i, name := range c.names {
		sites[i] = Site{Domain: name}
	}
	writeHTTPSettings(&w, s.opts, hashSizesFor(sites))
	w.WriteString(tlsIntermediate)
	d.servers(&w, listen, root, c)
	w.WriteString("    include " + filepath.Join(dir, probeFile) + ";\n}\n")
	writeGeneration(b, dir, map[string][]byte{
		mainFile: []byte(w.String()),
		mimeFile: renderMimeTypes(),
	})
	return filepath.Join(dir, mainFile)
}

// grantWorkerGroup gives the worker group read access to every key (group
// = (*Server).WorkerGID, mode 0640), as cert-per-handshake needs and as the
// node writes keys (node/tls.go). It does nothing when workers run as this
// process's user (not root).
func grantWorkerGroup(b *testing.B, s *Server, c *siteCerts) {
	b.Helper()
	gid, err := s.WorkerGID()
	if err != nil {
		b.Fatal(err)
	}
	if gid < 0 {
		return
	}
	for i := range c.names {
		if err := os.Chown(c.key(i), -1, gid); err != nil {
			b.Fatal(err)
		}
		if err := os.Chmod(c.key(i), 0o640); err != nil {
			b.Fatal(err)
		}
	}
	c.workersCanRead = true
}

// checkTLSBehaviour checks that sites get their own certificate over TLS 1.3
// and 1.2 with h2, and that an unknown name and a handshake without SNI
// fail without killing a worker.
func checkTLSBehaviour(b *testing.B, addr string, c *siteCerts, master int) {
	b.Helper()
	ctx := context.Background()
	workers := childPIDs(master)
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, name := range []string{c.names[0], c.names[len(c.names)-1]} {
			if _, err := tlsHandshake(ctx, addr, name, v); err != nil {
				b.Fatalf("%s, TLS %x: %v", name, v, err)
			}
		}
	}
	for _, name := range []string{"unknown.example.test", ""} {
		_, err := tlsHandshake(ctx, addr, name, tls.VersionTLS13)
		if err == nil {
			b.Fatalf("handshake with SNI %q succeeded; want a failure", name)
		}
		b.Logf("handshake with SNI %q fails: %v", name, err)
	}
	if got := childPIDs(master); fmt.Sprint(got) != fmt.Sprint(workers) {
		b.Fatalf("workers changed from %v to %v after failed handshakes", workers, got)
	}
}

// tlsHandshake does one full handshake (fresh config, no session cache)
// with SNI name ("" sends none) and checks what nginx offered.
func tlsHandshake(ctx context.Context, addr, name string, version uint16) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{
		ServerName:         name,
		InsecureSkipVerify: true, // self-signed; the leaf's name is checked below
		MinVersion:         version,
		MaxVersion:         version,
		NextProtos:         []string{"h2", "http/1.1"},
		// Without the hybrid ML-KEM share Go offers by default, which costs
		// the client CPU and nginx 1.22 / OpenSSL 3.0 ignores. P-256 must be
		// offered: in TLS 1.2 OpenSSL only uses an ECDSA certificate whose
		// curve the client lists.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	st := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	switch {
	case st.Version != version:
		return st, fmt.Errorf("negotiated TLS version %x, want %x", st.Version, version)
	case st.DidResume:
		return st, errors.New("session resumed")
	case st.NegotiatedProtocol != "h2":
		return st, fmt.Errorf("ALPN %q, want h2", st.NegotiatedProtocol)
	case len(st.PeerCertificates) == 0 || len(st.PeerCertificates[0].DNSNames) != 1 || st.PeerCertificates[0].DNSNames[0] != name:
		return st, fmt.Errorf("SNI %q: got a certificate for another name", name)
	}
	return st, nil
}

// handshakeBatch does tlsHandshakes full handshakes from tlsClients
// goroutines, the k-th with SNI name(k), bounded by tlsHandshakeBudget, and
// returns handshakes per second and the CPU microseconds per handshake of
// master's workers.
func handshakeBatch(b *testing.B, addr string, name func(k int) string, version uint16, master int) (perSec, cpuMicros float64) {
	b.Helper()
	workers := childPIDs(master)
	cpu0 := cpuTicks(b, workers)
	ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeBudget)
	defer cancel()
	var next, done atomic.Int64
	errs := make(chan error, tlsClients)
	var wg sync.WaitGroup
	start := time.Now()
	for range tlsClients {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= tlsHandshakes {
					return
				}
				sni := name(k)
				if _, err := tlsHandshake(ctx, addr, sni, version); err != nil {
					errs <- fmt.Errorf("handshake %d (%s): %w", k, sni, err)
					cancel()
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	n := float64(done.Load())
	if n < tlsHandshakes {
		b.Logf("only %d of %d handshakes within %s", done.Load(), tlsHandshakes, tlsHandshakeBudget)
	}
	ticks := cpuTicks(b, workers) - cpu0
	return n / took.Seconds(), float64(ticks) * 1e6 / userHZ / n
}

// cpuTicks sums utime and stime of pids (fields 14 and 15 of
// /proc/<pid>/stat; fields are counted after the command name's ')').
func cpuTicks(b *testing.B, pids []int) int {
	b.Helper()
	total := 0
	for _, pid := range pids {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			b.Fatal(err)
		}
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		for _, field := range f[11:13] {
			v, err := strconv.Atoi(field)
			if err != nil {
				b.Fatalf("/proc/%d/stat: %v", pid, err)
			}
			total += v
		}
	}
	return total
}

// vmRSSMB returns VmRSS of pid in MiB.
func vmRSSMB(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatalf("/proc/%d/status: %q", pid, line)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatalf("/proc/%d/status has no VmRSS", pid)
	return 0
}

// stopTLSNginx stops the master we started (SIGTERM, then SIGKILL to its
// process group, which holds only it and its workers).
func stopTLSNginx(b *testing.B, n *tlsNginx) {
	pid := n.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		b.Errorf("nginx (pid %d) did not stop within 15s of SIGTERM; killing its group", pid)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-n.done
	}
}

// BenchmarkTLSHandshakes measures full TLS handshakes per second (TLS 1.3
// and 1.2, no resumption, names spread over the sites) through the config
// sitefleet generates, beside bare nginx serving the same certificate:
//
//   - generated: a Plan with N sites, each with its own ECDSA P-256
//     certificate (key 0640, group = (*Server).WorkerGID when root, as the
//     node writes them), applied with Server.Apply and run by the Server as
//     its child with one worker. Each handshake goes through the reject
//     default server, the SNI switch to the catch-all HTTPS server and the
//     per-handshake load of the site's certificate and key (from
//     ssl_certificate_cache where the binary has it).
//   - bare: a hand-written nginx.conf with one server whose static
//     ssl_certificate and ssl_certificate_key are site 0's, the same
//     http-level TLS settings (writeTLSSettings) and one worker. Every
//     handshake asks for site 0 (the only name its certificate has).
//
// A first batch over every name, with the certificates not yet loaded,
// is reported apart (cold). Then both run side by side; batches alternate
// between them from the same client (handshakeBatch, tlsClients
// goroutines in this process), which checks the version, h2 and that the
// leaf is the name's own certificate but does not verify the chain. It
// reports handshakes per second and the worker's CPU time per handshake
// for each, and the median over the rounds of the generated/bare ratio.
func BenchmarkTLSHandshakes(b *testing.B) {
	for _, sites := range []int{1, 1000} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) { benchmarkTLSHandshakes(b, sites) })
	}
}

func benchmarkTLSHandshakes(b *testing.B, sites int) {
	f := newFixture(b)
	opts := f.options()
	opts.WorkerProcesses = "1"
	s := f.newServer(b, opts)
	certs := genSiteCerts(b, filepath.Join(f.dir, "certs"), sites)
	grantWorkerGroup(b, s, certs)
	dhparams := filepath.Join(f.dir, "dhparams.pem")
	if err := os.WriteFile(dhparams, sftls.FFDHE2048(), 0o644); err != nil {
		b.Fatal(err)
	}
	root := f.site(b, "shared", map[string]string{"index.html": "S"})

	// Generated: the plan with a certificate per site, through Apply and Run.
	genAddr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	plan := bigPlan(f.listen, root, f.placeholder, sites, 0, 0)
	plan.HTTPSListen, plan.DHParams = genAddr, dhparams
	for i := range plan.Sites {
		plan.Sites[i].TLS = &SiteTLS{Certificates: []CertFiles{{
			Names: []string{certs.names[i]}, Chain: certs.crt(i), Key: certs.key(i),
		}}}
	}
	mustApply(b, s, plan, true)
	run(b, s)
	waitServing(b, f.listen, certs.names[0], "/", 200, "S")
	// The Server records the master's pid a moment after nginx answers.
	testutil.WaitFor(b, "the managed nginx's pid", 10*time.Second, func() bool { return s.Status().PID != 0 })
	genMaster := s.Status().PID
	checkTLSBehaviour(b, genAddr, certs, genMaster)
	checkHTTPSGet(b, genAddr, certs.names[len(certs.names)-1], "S")

	// Bare: one static server with site 0's certificate.
	bareAddr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	bare := &tlsNginx{}
	bare.start(b, s, f.logs, filepath.Join(f.dir, "bare"),
		writeBareTLSConfig(b, s, filepath.Join(f.dir, "bare"), bareAddr, root, dhparams, certs))
	testutil.WaitFor(b, "bare nginx to complete a handshake", tlsNginxDeadline, func() bool {
		if bare.exited() {
			b.Fatalf("bare nginx exited: %v", bare.cmd.ProcessState)
		}
		_, err := tlsHandshake(context.Background(), bareAddr, certs.names[0], tls.VersionTLS13)
		return err == nil
	})
	bareMaster := bare.cmd.Process.Pid
	checkHTTPSGet(b, bareAddr, certs.names[0], "S")

	type target struct {
		addr   string
		name   func(k int) string
		master func() int
	}
	targets := [2]target{
		{genAddr, certs.name, func() int {
			if pid := s.Status().PID; pid != genMaster {
				b.Fatalf("managed nginx master changed from %d to %d (restarts: %d)", genMaster, pid, s.Status().Restarts)
			}
			return genMaster
		}},
		{bareAddr, func(int) string { return certs.names[0] }, func() int {
			if bare.exited() {
				b.Fatalf("bare nginx exited: %v", bare.cmd.ProcessState)
			}
			return bareMaster
		}},
	}
	versions := [2]uint16{tls.VersionTLS13, tls.VersionTLS12}
	// The first handshake for each name loads its certificate and key
	// (into ssl_certificate_cache, where nginx has it, for the cache's
	// inactive time): one batch over every name, reported apart, before
	// the rounds that measure the steady state.
	coldRate, coldCPU := handshakeBatch(b, genAddr, certs.name, tls.VersionTLS13, genMaster)
	var rate, cpu [2][2]float64 // [target][version]
	var ratios [2][]float64     // [version]: generated/bare per round
	for b.Loop() {
		for vi, v := range versions {
			var round [2]float64
			for ti, t := range targets {
				r, c := handshakeBatch(b, t.addr, t.name, v, t.master())
				rate[ti][vi] += r
				cpu[ti][vi] += c
				round[ti] = r
			}
			ratios[vi] = append(ratios[vi], round[0]/round[1])
		}
	}
	iters := float64(b.N)
	for ti, who := range []string{"generated", "bare"} {
		for vi, v := range []string{"tls13", "tls12"} {
			b.ReportMetric(rate[ti][vi]/iters, who+"-"+v+"-hs/s")
			b.ReportMetric(cpu[ti][vi]/iters, who+"-"+v+"-worker-us/hs")
		}
	}
	b.ReportMetric(coldRate, "generated-tls13-cold-hs/s") // after b.Loop, which clears metrics
	b.ReportMetric(coldCPU, "generated-tls13-cold-worker-us/hs")
	// The median of the rounds' ratios: a busy moment on this shared
	// machine moves one round, not the figure.
	b.ReportMetric(median(ratios[0]), "tls13-generated/bare")
	b.ReportMetric(median(ratios[1]), "tls12-generated/bare")
	b.ReportMetric(0, "ns/op")
	for _, bad := range []string{"[alert]", "[crit]", "[emerg]", "exited on signal"} {
		if strings.Contains(f.logs.String(), bad) {
			b.Errorf("nginx logged %q:\n%s", bad, f.logs.String())
		}
	}
}

// writeBareTLSConfig writes the bare config to prefix/nginx.conf and returns
// its path: one HTTPS server with site 0's certificate as static files and
// the http-level TLS settings sitefleet renders, one worker.
func writeBareTLSConfig(b *testing.B, s *Server, prefix, listen, root, dhparams string, c *siteCerts) string {
	b.Helper()
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		b.Fatal(err)
	}
	var w strings.Builder
	if os.Geteuid() == 0 {
		w.WriteString("user " + s.opts.User + ";\n")
	}
	fmt.Fprintf(&w, "worker_processes 1;\npid %s;\nerror_log stderr warn;\ndaemon off;\n"+
		"events {\n    worker_connections %d;\n}\nhttp {\n    access_log off;\n",
		filepath.Join(prefix, "nginx.pid"), workerConnections)
	// Temporary files under prefix: nginx's compiled-in paths are not
	// writable by a user that is not root (as in the node image).
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		b.Fatal(err)
	}
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&w, "    %s_temp_path %s;\n", t, filepath.Join(prefix, "tmp", t))
	}
	writeTLSSettings(&w, dhparams, nil)
	fmt.Fprintf(&w, "    server {\n        listen %s ssl http2;\n        ssl_certificate %s;\n"+
		"        ssl_certificate_key %s;\n        root %s;\n    }\n}\n", listen, c.crt(0), c.key(0), root)
	conf := filepath.Join(prefix, mainFile)
	if err := os.WriteFile(conf, []byte(w.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return conf
}

// checkHTTPSGet checks that GET https://addr/ with SNI and Host name
// answers 200 with body over h2.
func checkHTTPSGet(b *testing.B, addr, name, body string) {
	b.Helper()
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			ForceAttemptHTTP2: true,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{ServerName: name, InsecureSkipVerify: true}, // self-signed
		},
		Timeout: 5 * time.Second,
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Host = name
	resp, err := client.Do(req)
	if err != nil {
		b.Fatalf("GET https://%s/ (%s): %v", addr, name, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || string(got) != body || resp.ProtoMajor != 2 {
		b.Fatalf("GET https://%s/ (%s): %s %d %q %v, want HTTP/2 200 %q", addr, name, resp.Proto, resp.StatusCode, got, err, body)
	}
}
