package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// TestClusterStatusDriftAndFailover runs three nodes on one etcd: a leads,
// c may never lead; b's nginx config is broken so it drifts; a stops and b
// takes over.
func TestClusterStatusDriftAndFailover(t *testing.T) {
	e := etcdtest.New(t)
	nodes := map[string]*testNode{}
	var extraB string
	for _, name := range []string{"a", "b", "c"} {
		cfg := nodeConfig(t, e.Endpoint())
		cfg.NodeName = name
		cfg.State.Etcd.KeyPrefix = "/cluster-test"
		cfg.DisallowLeadership = name == "c"
		if name == "b" {
			extraB = filepath.Join(cfg.DataDir, "extra.conf")
			if err := os.WriteFile(extraB, []byte("# fine\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg.Web.Nginx.ExtraHTTPConfigFiles = []string{extraB}
		}
		nodes[name] = startNode(t, cfg)
		if name == "a" {
			nodes[name].eventually("a leads", 10*time.Second, func() error { return expectLeader(nodes["a"], true) })
		}
	}
	a, b, c := nodes["a"], nodes["b"], nodes["c"]
	ctx := context.Background()

	a.eventually("three live nodes, a leads, none drifted", 10*time.Second, func() error {
		cs, err := a.api.Cluster(ctx)
		if err != nil {
			return err
		}
		return checkCluster(cs, "a", map[string]bool{"a": true, "b": true, "c": true}, nil)
	})
	if out, err := c.cli("cluster", "status", "--grace", "0s"); err != nil {
		t.Fatalf("cluster status of a converged fleet: %v\n%s", err, out)
	} else if !strings.Contains(out, "a     *") {
		t.Fatalf("cluster status does not mark a as leader:\n%s", out)
	}

	// b cannot apply the next change.
	if err := os.WriteFile(extraB, []byte("broken {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.PutSite(ctx, state.Site{Domain: "new.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	a.waitServed("new.test")
	c.waitServed("new.test")
	b.eventually("b shows as drifted", 10*time.Second, func() error {
		cs, err := b.api.Cluster(ctx)
		if err != nil {
			return err
		}
		return checkCluster(cs, "a", map[string]bool{"a": true, "b": true, "c": true}, []string{"b"})
	})
	out, err := a.cli("cluster", "status", "--grace", "0s")
	if err == nil || !strings.Contains(err.Error(), "b serves revision") {
		t.Fatalf("cluster status with b drifted: err %v\n%s", err, out)
	}
	if _, err := a.cli("cluster", "status", "--grace", "1h"); err != nil {
		t.Fatalf("within the grace period: %v", err)
	}
	prev, err := b.api.Preview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(prev.Changes); got != "[{add site new.test}]" {
		t.Fatalf("b's preview = %s, want the site it misses", got)
	}
	if out, err := b.cli("status", "--dry-run"); err != nil || !strings.Contains(out, "add") || !strings.Contains(out, "new.test") {
		t.Fatalf("status --dry-run: %v\n%s", err, out)
	}
	if p, _ := a.api.Preview(ctx); len(p.Changes) != 0 {
		t.Fatalf("a's preview = %+v, want no changes", p)
	}

	// The leader stops: b takes over (c may not), a shows as gone.
	a.stop()
	b.eventually("b leads", 5*time.Second, func() error { return expectLeader(b, true) })
	if err := expectLeader(c, false); err != nil {
		t.Fatal(err)
	}
	cs, err := c.api.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCluster(cs, "b", map[string]bool{"a": false, "b": true, "c": true}, []string{"b"}); err != nil {
		t.Fatal(err)
	}
}

func expectLeader(n *testNode, want bool) error {
	st, err := n.api.Status(context.Background())
	if err != nil {
		return err
	}
	if st.Leader != want {
		return fmt.Errorf("%s leader = %t, want %t", st.Node, st.Leader, want)
	}
	return nil
}

// checkCluster compares a cluster status with the expected leader, node
// liveness and drifted nodes.
func checkCluster(cs client.ClusterStatus, leader string, live map[string]bool, drifted []string) error {
	if cs.Leader != leader {
		return fmt.Errorf("leader %q, want %q", cs.Leader, leader)
	}
	if len(cs.Nodes) != len(live) {
		return fmt.Errorf("%d nodes, want %d: %+v", len(cs.Nodes), len(live), cs.Nodes)
	}
	for _, n := range cs.Nodes {
		if n.Live != live[n.Name] {
			return fmt.Errorf("%s live = %t", n.Name, n.Live)
		}
		if n.Leader != (n.Name == leader) {
			return fmt.Errorf("%s leader mark = %t", n.Name, n.Leader)
		}
		wantDrift := false
		for _, d := range drifted {
			wantDrift = wantDrift || d == n.Name
		}
		if n.Live && n.Drifted != wantDrift {
			return fmt.Errorf("%s drifted = %t (applied %d, desired %d)", n.Name, n.Drifted, n.AppliedRevision, cs.StateRevision)
		}
		if n.Live && n.Healthy == wantDrift {
			return fmt.Errorf("%s healthy = %t (last error %q)", n.Name, n.Healthy, n.LastError)
		}
	}
	return nil
}
