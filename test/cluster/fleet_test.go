// Package cluster_test is the multi-process fault suite: a real
// three-member etcd (TLS with client certificates, as in production),
// three sitefleet node processes and a loopback TCP
// proxy per node and etcd member that the tests cut, black-hole and
// restore. Every scenario asserts what each node serves over HTTP.
package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/faultproxy"
	"github.com/sitefleet/sitefleet/internal/testutil"
)

// Binaries built once by TestMain.
var (
	sitefleetBin string
	etcdBin      string
)

// Fleet timing used by every scenario.
const (
	leaseTTL     = 3 * time.Second
	storeTimeout = time.Second
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sitefleet-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sitefleetBin, etcdBin = filepath.Join(dir, "sitefleet"), filepath.Join(dir, "etcdmember")
	for bin, pkg := range map[string]string{sitefleetBin: "../../cmd/sitefleet", etcdBin: "../../internal/tools/etcdmember"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a process the test started.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(t testing.TB, logPath string, name string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p
}

// cleanEnv drops SITEFLEET_* variables, which nodes would read as config.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SITEFLEET_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends sig and waits up to timeout for the process to exit, then
// kills it.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// etcdMember is one etcd member process. Clients reach it over https and
// must present a certificate from the fleet's CA; its peers talk http.
type etcdMember struct {
	name, dir, client, peer, cluster string
	log                              string
	tls                              tlsFiles
	p                                *proc
}

// tlsFiles are the PEM files of the fleet's etcd TLS.
type tlsFiles struct {
	ca                    string
	serverCert, serverKey string
	clientCert, clientKey string
}

func (m *etcdMember) start(t testing.TB, state string) {
	t.Helper()
	m.p = startProc(t, m.log, etcdBin, "--name", m.name, "--data-dir", m.dir, "--client-url", "https://"+m.client,
		"--peer-url", "http://"+m.peer, "--initial-cluster", m.cluster, "--initial-cluster-state", state,
		"--cert-file", m.tls.serverCert, "--key-file", m.tls.serverKey, "--trusted-ca-file", m.tls.ca, "--client-cert-auth")
}

// node is one sitefleet node process, with a proxy to each etcd member.
type node struct {
	name, dir, config, api, http, https, log string
	proxies                                  []*faultproxy.Proxy
	p                                        *proc
	token                                    string
}

// fleet is three etcd members and three nodes.
type fleet struct {
	t       testing.TB
	dir     string
	tls     tlsFiles
	members []*etcdMember
	nodes   []*node
	opts    fleetOptions
}

// fleetOptions adjust the nodes of a fleet.
type fleetOptions struct {
	// http gives node i's HTTP listen address; "" (or missing) picks one.
	http []string
	// extra, when set, returns YAML appended to node i's configuration;
	// tls, api and cluster, lines (indented two spaces) for its tls, api
	// and cluster blocks.
	extra, tls, api, cluster func(i int) string
	// drain is shutdown.drain; default 0s (a node stops at its first
	// signal).
	drain string
	// nodes is how many nodes to start; default 3.
	nodes int
}

// newFleet starts a three-member etcd and three nodes, and waits until
// every node is ready and registered.
func newFleet(t testing.TB) *fleet {
	t.Helper()
	return newFleetWith(t, fleetOptions{})
}

// newFleetWith is newFleet with options for the nodes.
func newFleetWith(t testing.TB, opts fleetOptions) *fleet {
	t.Helper()
	f := &fleet{t: t, dir: testutil.WorldReadableTempDir(t), opts: opts}
	ca := etcdtest.NewCA(t)
	server, cl := ca.ServerCert(t), ca.ClientCert(t, "sitefleet-node")
	f.tls = tlsFiles{ca: ca.CertFile, serverCert: server.CertFile, serverKey: server.KeyFile, clientCert: cl.CertFile, clientKey: cl.KeyFile}
	var peers []string
	for i := range 3 {
		m := &etcdMember{name: fmt.Sprintf("m%d", i+1), dir: filepath.Join(f.dir, fmt.Sprintf("etcd%d", i+1)),
			client: testutil.FreeAddr(t), peer: testutil.FreeAddr(t), log: filepath.Join(f.dir, fmt.Sprintf("etcd%d.log", i+1)), tls: f.tls}
		peers = append(peers, m.name+"=http://"+m.peer)
		f.members = append(f.members, m)
	}
	for _, m := range f.members {
		m.cluster = strings.Join(peers, ",")
		m.start(t, "new")
	}
	t.Cleanup(f.cleanup)
	count := opts.nodes
	if count == 0 {
		count = 3
	}
	for i := range count {
		f.nodes = append(f.nodes, f.newNode(i))
	}
	for _, n := range f.nodes {
		f.startNode(n)
	}
	f.eventually("every node ready and registered", 60*time.Second, func() error {
		cs, err := f.client(0).Cluster(context.Background())
		if err != nil {
			return err
		}
		live := 0
		for _, n := range cs.Nodes {
			if n.Live && n.Ready {
				live++
			}
		}
		if live != count || cs.Leader == "" {
			return fmt.Errorf("%d ready nodes, leader %q", live, cs.Leader)
		}
		return nil
	})
	return f
}

func (f *fleet) newNode(i int) *node {
	t := f.t
	n := &node{name: fmt.Sprintf("node%d", i+1), dir: filepath.Join(f.dir, fmt.Sprintf("node%d", i+1)),
		api: testutil.FreeAddr(t), http: testutil.FreeAddr(t), https: testutil.FreeAddr(t), log: filepath.Join(f.dir, fmt.Sprintf("node%d.log", i+1))}
	if i < len(f.opts.http) && f.opts.http[i] != "" {
		n.http = f.opts.http[i]
	}
	var endpoints []string
	for _, m := range f.members {
		p, err := faultproxy.Start(m.client)
		if err != nil {
			t.Fatal(err)
		}
		n.proxies = append(n.proxies, p)
		endpoints = append(endpoints, "https://"+p.Addr())
	}
	n.config = filepath.Join(f.dir, n.name+".yaml")
	cfg := fmt.Sprintf(`dataDir: %s
nodeName: %s
state:
  store: etcd
  etcd:
    keyPrefix: /fleet
    timeout: %d
    address: "%s"
    tlsConfiguration: { ca: "%s", clientCertificate: "%s", clientKey: "%s" }
api:
  listen: %s
  tokens: ["fleet-test-token"]
%sweb:
  httpListen: %s
  httpsListen: %s
secrets:
  key: "c2l0ZWZsZWV0LXRlc3QtY2x1c3Rlci1rZXktMzJieXQ="
tls:
  dhParamBits: 512
%scluster:
  leaseTTL: %s
  publishInterval: 200ms
  memberRetention: 1s
%sreconcile:
  quiescence: 10
shutdown:
  drain: %s
log:
  level: debug
`, n.dir, n.name, storeTimeout.Milliseconds(), strings.Join(endpoints, ","), f.tls.ca, f.tls.clientCert, f.tls.clientKey, n.api, f.nodeAPI(i), n.http, n.https, f.nodeTLS(i), leaseTTL, f.nodeCluster(i), f.drain())
	if f.opts.extra != nil {
		cfg += f.opts.extra(i)
	}
	if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n.token = "fleet-test-token"
	return n
}

func (f *fleet) nodeAPI(i int) string {
	if f.opts.api == nil {
		return ""
	}
	return f.opts.api(i)
}

func (f *fleet) drain() string {
	if f.opts.drain == "" {
		return "0s"
	}
	return f.opts.drain
}

func (f *fleet) nodeCluster(i int) string {
	if f.opts.cluster == nil {
		return ""
	}
	return f.opts.cluster(i)
}

func (f *fleet) nodeTLS(i int) string {
	if f.opts.tls == nil {
		return ""
	}
	return f.opts.tls(i)
}

func (f *fleet) startNode(n *node) {
	n.p = startProc(f.t, n.log, sitefleetBin, "node", "--config", n.config)
	f.eventually(n.name+" API answers", 30*time.Second, func() error {
		if !n.p.running() {
			b, _ := os.ReadFile(n.log)
			f.t.Fatalf("%s exited at start:\n%s", n.name, tail(b, 2048))
		}
		resp, err := http.Get("http://" + n.api + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
}

// kill SIGKILLs a node; with nginx, its nginx too, as when the host dies.
func (f *fleet) kill(n *node, withNginx bool) {
	n.p.stop(syscall.SIGKILL, 5*time.Second)
	if withNginx {
		killNginx(n)
	}
}

// killNginx SIGKILLs the process group of the nginx the node started.
func killNginx(n *node) {
	b, err := os.ReadFile(filepath.Join(n.dir, "nginx", "run", "nginx.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	for range 100 {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cut isolates a node from every etcd member.
func (n *node) cut() {
	for _, p := range n.proxies {
		p.Blackhole()
	}
}

func (n *node) restore() {
	for _, p := range n.proxies {
		p.Restore()
	}
}

func (f *fleet) cleanup() {
	for _, n := range f.nodes {
		if n.p != nil {
			n.p.stop(syscall.SIGTERM, 20*time.Second)
		}
		killNginx(n) // left running by a node that was killed
		for _, p := range n.proxies {
			p.Close()
		}
	}
	for _, m := range f.members {
		if m.p != nil {
			m.p.stop(syscall.SIGTERM, 10*time.Second)
		}
	}
	if f.t.Failed() {
		for _, l := range append(f.nodeLogs(), f.etcdLogs()...) {
			b, _ := os.ReadFile(l)
			f.t.Logf("==== %s (last 4 KiB)\n%s", filepath.Base(l), tail(b, 4096))
		}
	}
}

func (f *fleet) nodeLogs() []string {
	var out []string
	for _, n := range f.nodes {
		out = append(out, n.log)
	}
	return out
}

func (f *fleet) etcdLogs() []string {
	var out []string
	for _, m := range f.members {
		out = append(out, m.log)
	}
	return out
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (f *fleet) client(i int) *client.Client {
	return client.New("http://"+f.nodes[i].api, f.nodes[i].token)
}

func (f *fleet) eventually(what string, timeout time.Duration, fn func() error) time.Duration {
	f.t.Helper()
	return testutil.Eventually(f.t, what, timeout, fn)
}

// get requests / from a node's nginx with the given Host.
func (n *node) get(host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+n.http+"/", nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// serves reports whether the node serves host as a configured site.
func (n *node) serves(host string) error {
	code, body, err := n.get(host)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	if code != 200 || !strings.Contains(body, "served by sitefleet") {
		return fmt.Errorf("%s answers %d for %s", n.name, code, host)
	}
	return nil
}

// refuses reports whether the node answers host as unknown.
func (n *node) refuses(host string) error {
	code, _, err := n.get(host)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	if code != 404 {
		return fmt.Errorf("%s answers %d for %s, want 404", n.name, code, host)
	}
	return nil
}

// waitServedBy waits until every given node serves host.
func (f *fleet) waitServedBy(host string, nodes ...*node) time.Duration {
	f.t.Helper()
	return f.eventually(host+" served", 20*time.Second, func() error {
		for _, n := range nodes {
			if err := n.serves(host); err != nil {
				return err
			}
		}
		return nil
	})
}
