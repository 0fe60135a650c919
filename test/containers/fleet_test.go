//go:build containers

// Package containers_test runs the example Compose fleet (three etcd
// members, three nodes, HAProxy) from the images scripts/images.sh makes,
// and drives bounded load through HAProxy while it deploys, stops, kills
// and restarts nodes and etcd members. Run it with make test-containers.
package containers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/state"
)

// image is the sitefleet image the fleet runs; make test-containers
// builds it.
var image = envOr("SITEFLEET_TEST_IMAGE", "sitefleet:test")

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// fleet is one Compose project of the example fleet.
type fleet struct {
	t       *testing.T
	project string
	file    string
	env     []string
	http    string    // HAProxy, host:port
	stats   string    // HAProxy's statistics, host:port
	api     [3]string // the nodes' APIs, host:port
	token   string
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// startFleet starts the example fleet under a project name of its own and
// removes every container, network and volume it made when the test ends.
func startFleet(t *testing.T) *fleet {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is needed")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, project: "sftest" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(random(6))),
		file: filepath.Join(root, "examples", "compose", "docker-compose.yml")}
	f.http = testutil.FreeAddr(t)
	f.stats = testutil.FreeAddr(t)
	ports := []string{"HTTP_PORT=" + port(f.http), "STATS_PORT=" + port(f.stats)}
	for i := range f.api {
		f.api[i] = testutil.FreeAddr(t)
		ports = append(ports, fmt.Sprintf("NODE%d_API_PORT=%s", i+1, port(f.api[i])))
	}
	f.env = append(os.Environ(), append(ports,
		"COMPOSE_PROJECT_NAME="+f.project,
		"SITEFLEET_IMAGE="+image,
		"BASE_IMAGE="+envOr("SITEFLEET_TEST_BASE_IMAGE", "sitefleet/base:sid"),
		"BUILD_IMAGE="+envOr("SITEFLEET_TEST_BUILD_IMAGE", "sitefleet/go:local"),
		"APT_OPTIONS=-o Acquire::Check-Valid-Until=false",
	)...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := f.compose("logs", "--tail", "40")
			t.Logf("fleet logs:\n%s", out)
		}
		if out, err := f.compose("down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	// etcd's and HAProxy's images (docker's cache makes this quick when
	// nothing changed); the sitefleet image is make test-containers'.
	if out, err := f.compose("build", "-q", "etcd1", "haproxy"); err != nil {
		t.Fatalf("compose build: %v\n%s", err, out)
	}
	// No key and no token are given: the example makes them at its first
	// start, and the README reads the token as this does.
	if out, err := f.compose("up", "-d"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	f.eventually("the generated admin token", time.Minute, func() error {
		out, err := f.compose("exec", "-T", "node1", "cat", "/run/sitefleet/admin.token")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		lines := strings.Fields(out) // the token is the last line; compose may warn before it
		if len(lines) == 0 || len(lines[len(lines)-1]) < 32 {
			return fmt.Errorf("no token in %q", out)
		}
		f.token = lines[len(lines)-1]
		return nil
	})
	f.eventually("every node is ready and HAProxy answers", 3*time.Minute, func() error {
		for i := range f.api {
			r, err := f.client(i).Ready(context.Background())
			if err != nil || !r.Ready {
				return fmt.Errorf("node%d: %+v %v", i+1, r, err)
			}
		}
		// HAProxy answers for a host no site claims with the nodes' 404.
		if body, err := f.get("any.test"); !strings.Contains(body, "no site is configured for this host") {
			return fmt.Errorf("through HAProxy: %q %v", body, err)
		}
		return nil
	})
	return f
}

func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// setEnv changes one of the variables compose runs with.
func (f *fleet) setEnv(key, value string) {
	for i, kv := range f.env {
		if strings.HasPrefix(kv, key+"=") {
			f.env[i] = key + "=" + value
			return
		}
	}
	f.env = append(f.env, key+"="+value)
}

// backendUp reports whether HAProxy's statistics show server name UP.
func (f *fleet) backendUp(name string) func() error {
	return func() error {
		resp, err := http.Get("http://" + f.stats + "/;csv")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		for _, line := range strings.Split(b.String(), "\n") {
			fields := strings.Split(line, ",")
			if len(fields) > 17 && fields[0] == "nodes" && fields[1] == name {
				if fields[17] == "UP" {
					return nil
				}
				return fmt.Errorf("%s is %s in HAProxy", name, fields[17])
			}
		}
		return fmt.Errorf("%s is not in HAProxy's statistics", name)
	}
}

func (f *fleet) compose(args ...string) (string, error) {
	cmd := exec.Command("docker-compose", append([]string{"-f", f.file}, args...)...)
	cmd.Env = f.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (f *fleet) mustOutput(args ...string) string {
	f.t.Helper()
	out, err := f.compose(args...)
	if err != nil {
		f.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (f *fleet) mustCompose(args ...string) {
	f.t.Helper()
	if out, err := f.compose(args...); err != nil {
		f.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (f *fleet) client(i int) *client.Client {
	return client.New("http://"+f.api[i], f.token)
}

func (f *fleet) eventually(what string, timeout time.Duration, fn func() error) time.Duration {
	f.t.Helper()
	return testutil.Eventually(f.t, what, timeout, fn)
}

// get requests / of host through HAProxy.
func (f *fleet) get(host string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+f.http+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return b.String(), fmt.Errorf("status %d", resp.StatusCode)
	}
	return b.String(), nil
}

// load sends requests for host through HAProxy, one at a time, until stop
// is called (or for at most limit), and counts those that failed or did
// not carry want.
type load struct {
	sent, failed atomic.Int64
	stop         func() (sent, failed int64)
}

func (f *fleet) startLoad(host, want string, limit time.Duration) *load {
	l := &load{}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			body, err := f.get(host)
			l.sent.Add(1)
			if err != nil || !strings.Contains(body, want) {
				l.failed.Add(1)
			}
		}
	}()
	l.stop = func() (int64, int64) { cancel(); <-done; return l.sent.Load(), l.failed.Load() }
	return l
}

func TestFleetInContainers(t *testing.T) {
	f := startFleet(t)
	ctx := context.Background()

	// A deploy through a node's API is served through the balancer.
	if _, err := f.client(0).PutSite(ctx, state.Site{Domain: "c.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"1", "2"} {
		bundle := testutil.TarGz(t, map[string]string{"index.html": "<p>version " + v + "</p>\n"})
		if _, err := f.client(i).UploadBundle(ctx, "web", v, bytes.NewReader(bundle), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	res, err := f.client(1).Deploy(ctx, "c.test", "web", "1", time.Minute, client.Precondition{})
	if err != nil || res.Wait == nil || !res.Wait.Done {
		t.Fatalf("deploy: %+v %v", res.Wait, err)
	}
	answered := time.Since(start)
	took := f.eventually("the balancer serves the deploy", 30*time.Second, func() error {
		body, err := f.get("c.test")
		if err == nil && !strings.Contains(body, "version 1") {
			err = fmt.Errorf("%q", body)
		}
		return err
	})
	t.Logf("deploy: --wait answered after %s (every node's record says it serves it: %+v); the balancer served it %s after that",
		answered.Round(time.Millisecond), res.Wait.Nodes, took.Round(time.Millisecond))

	scenario := func(name string, allowFailures bool, act func()) {
		t.Helper()
		l := f.startLoad("c.test", "version 1", 3*time.Minute)
		time.Sleep(time.Second)
		start := time.Now()
		act()
		converged := time.Since(start)
		time.Sleep(2 * time.Second)
		sent, failed := l.stop()
		t.Logf("%s: %d requests, %d failed, converged in %s", name, sent, failed, converged.Round(time.Millisecond))
		if sent == 0 || failed > 0 && !allowFailures {
			t.Errorf("%s: %d of %d requests failed", name, failed, sent)
		}
	}
	ready := func(i int) func() error {
		return func() error {
			r, err := f.client(i).Ready(ctx)
			if err == nil && !r.Ready {
				err = fmt.Errorf("%s", r.Reason)
			}
			return err
		}
	}

	// A node stopped (SIGTERM: it drains) and started again.
	scenario("stop and start node2", false, func() {
		f.mustCompose("stop", "-t", "30", "node2")
		f.mustCompose("start", "node2")
		f.eventually("node2 ready again", time.Minute, ready(1))
	})

	// A node killed outright: only requests in flight may fail, and
	// HAProxy retries them.
	scenario("SIGKILL node3 and start it", true, func() {
		f.mustCompose("kill", "-s", "SIGKILL", "node3")
		f.mustCompose("start", "node3")
		f.eventually("node3 ready again", time.Minute, ready(2))
	})

	// Every node rolled, one at a time, to a new image tag (the same
	// image here): each container is replaced, draining first.
	if out, err := exec.Command("docker", "tag", image, image+"-rolled").CombinedOutput(); err != nil {
		t.Fatalf("docker tag: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", image+"-rolled").Run() })
	scenario("roll every node to a new image tag", false, func() {
		f.setEnv("SITEFLEET_IMAGE", image+"-rolled")
		for i, n := range []string{"node1", "node2", "node3"} {
			f.mustCompose("up", "-d", "--no-deps", n)
			f.eventually(n+" ready on the new tag", 2*time.Minute, ready(i))
			f.eventually("HAProxy sees "+n+" again", 30*time.Second, f.backendUp(n))
		}
	})

	// A node cut from etcd alone keeps serving and says it is stale; a
	// change made meanwhile reaches it once it is reconnected.
	scenario("node1 cut from etcd and reconnected", false, func() {
		lines := strings.Fields(f.mustOutput("ps", "-q", "node1"))
		id := lines[len(lines)-1] // the container's ID is the last word printed
		network := f.project + "_etcd"
		if out, err := exec.Command("docker", "network", "disconnect", network, id).CombinedOutput(); err != nil {
			t.Fatalf("network disconnect: %v\n%s", err, out)
		}
		f.eventually("node1 reports stale", 2*time.Minute, func() error {
			st, err := f.client(0).Status(ctx)
			if err == nil && !st.Stale {
				err = fmt.Errorf("not stale")
			}
			return err
		})
		site, err := f.client(1).PutSite(ctx, state.Site{Domain: "cut.test"}, client.Precondition{})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("docker", "network", "connect", network, id).CombinedOutput(); err != nil {
			t.Fatalf("network connect: %v\n%s", err, out)
		}
		f.eventually("node1 serves the change made while it was cut", 2*time.Minute, func() error {
			st, err := f.client(0).Status(ctx)
			if err == nil && (st.Stale || st.AppliedRevision < site.Revision) {
				err = fmt.Errorf("stale %v, applied %d of %d", st.Stale, st.AppliedRevision, site.Revision)
			}
			return err
		})
	})

	// A node restarted while etcd is unreachable serves from its cache.
	scenario("node1 restarted while etcd is down", false, func() {
		f.mustCompose("stop", "-t", "5", "etcd1", "etcd2", "etcd3")
		f.mustCompose("restart", "-t", "30", "node1")
		f.eventually("node1 ready from its cache", time.Minute, ready(0))
		f.eventually("HAProxy sees node1 again", 30*time.Second, f.backendUp("node1"))
		f.mustCompose("start", "etcd1", "etcd2", "etcd3")
		f.eventually("node1 reaches etcd again", 2*time.Minute, func() error {
			st, err := f.client(0).Status(ctx)
			if err == nil && st.Stale {
				err = fmt.Errorf("still stale")
			}
			return err
		})
	})

	// One etcd member stopped: writes still work. A second: quorum is
	// lost, every node keeps serving and writes are refused with 503. After
	// recovery writes work and every node converges.
	scenario("etcd members stopped one, then two, and started", false, func() {
		f.mustCompose("stop", "-t", "5", "etcd3")
		f.eventually("writes work with two members of three", time.Minute, func() error {
			_, err := f.client(0).PutSite(ctx, state.Site{Domain: "two-members.test"}, client.Precondition{})
			return err
		})
		f.mustCompose("stop", "-t", "5", "etcd2")
		f.eventually("writes are refused with 503", time.Minute, func() error {
			_, err := f.client(0).PutSite(ctx, state.Site{Domain: "during.test"}, client.Precondition{})
			if client.StatusOf(err) != http.StatusServiceUnavailable {
				return fmt.Errorf("write without quorum: %v", err)
			}
			return nil
		})
		f.mustCompose("start", "etcd2", "etcd3")
		f.eventually("writes work again", 2*time.Minute, func() error {
			_, err := f.client(0).PutSite(ctx, state.Site{Domain: "after.test"}, client.Precondition{})
			return err
		})
		f.eventually("every node serves the write", time.Minute, func() error {
			for i := range f.api {
				st, err := f.client(i).Status(ctx)
				if err != nil {
					return err
				}
				if st.Sites < 4 { // c, cut, two-members and after.test
					return fmt.Errorf("node%d serves %d sites", i+1, st.Sites)
				}
			}
			return nil
		})
	})
}
