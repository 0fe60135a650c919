package cluster_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// getPath requests path from the node's HTTP port with the given Host.
func (n *node) getPath(host, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+n.http+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (n *node) readyz() int {
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + n.api + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

const healthPath = "/.well-known/sitefleet/ready"

// On SIGTERM a node fails its readiness checks at once, keeps serving
// for shutdown.drain, then exits; a second signal ends it at once.
func TestDrainOnSIGTERM(t *testing.T) {
	f := newFleetWith(t, fleetOptions{nodes: 2, drain: "4s"})
	addSite(t, f.client(0), "drain.test")
	f.waitServedBy("drain.test", f.nodes...)
	for _, n := range f.nodes {
		// The node brings the health path in line with its readiness
		// within a tenth of a second.
		f.eventually(n.name+" health path ready", 5*time.Second, func() error {
			if code, body, err := n.getPath("any.host.test", healthPath); err != nil || code != 200 || body != "ready\n" {
				return fmt.Errorf("%d %q %v", code, body, err)
			}
			return nil
		})
	}

	n := f.nodes[0]
	start := time.Now()
	if err := n.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f.eventually("readiness fails once draining", 2*time.Second, func() error {
		if code := n.readyz(); code != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d", code)
		}
		if code, _, _ := n.getPath("drain.test", healthPath); code != http.StatusServiceUnavailable {
			return fmt.Errorf("health path %d", code)
		}
		return nil
	})
	// Still serving while it drains.
	for time.Since(start) < 3*time.Second {
		if code, body, err := n.get("drain.test"); err != nil || code != 200 || !strings.Contains(body, "served by sitefleet") {
			t.Fatalf("%s stopped serving %s into the drain: %d %v", n.name, time.Since(start).Round(time.Millisecond), code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-n.p.done:
		t.Fatalf("exited %s after SIGTERM, before the 4s drain ended", time.Since(start))
	case <-time.After(time.Until(start.Add(3900 * time.Millisecond))):
	}
	select {
	case <-n.p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("still running long after the drain")
	}
	t.Logf("%s exited %s after SIGTERM (drain 4s)", n.name, time.Since(start).Round(time.Millisecond))

	// A second signal stops the other at once.
	m := f.nodes[1]
	start = time.Now()
	_ = m.p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	_ = m.p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.p.done:
		if time.Since(start) >= 4*time.Second {
			t.Fatalf("the node stopped %s after the first signal: the second did not cut the drain short", time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal did not stop the node")
	}
}
