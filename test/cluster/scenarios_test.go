package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/state"
)

func addSite(t testing.TB, c *client.Client, domain string) state.Site {
	t.Helper()
	s, err := c.PutSite(context.Background(), state.Site{Domain: domain}, client.Precondition{})
	if err != nil {
		t.Fatalf("add %s: %v", domain, err)
	}
	return s
}

func TestChangeThroughOneNodeIsServedByAll(t *testing.T) {
	f := newFleet(t)
	addSite(t, f.client(0), "one.test")
	took := f.waitServedBy("one.test", f.nodes...)
	t.Logf("served by all three nodes %s after the write returned", took)
	if _, err := f.client(2).DeleteSite(context.Background(), "one.test", client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	f.eventually("removed everywhere", 20*time.Second, func() error {
		for _, n := range f.nodes {
			if err := n.refuses("one.test"); err != nil {
				return err
			}
		}
		return nil
	})
}

func leaderIndex(f *fleet, from int) (int, error) {
	cs, err := f.client(from).Cluster(context.Background())
	if err != nil {
		return -1, err
	}
	for i, n := range f.nodes {
		if n.name == cs.Leader {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no leader (%q)", cs.Leader)
}

func TestLeaderKilled(t *testing.T) {
	f := newFleet(t)
	li, err := leaderIndex(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	dead := f.nodes[li]
	other := (li + 1) % 3
	f.kill(dead, false)
	killedAt := time.Now()
	var newLeader string
	f.eventually("a new leader", leaseTTL+5*time.Second, func() error {
		cs, err := f.client(other).Cluster(context.Background())
		if err != nil {
			return err
		}
		if cs.Leader == "" || cs.Leader == dead.name {
			return fmt.Errorf("leader %q", cs.Leader)
		}
		newLeader = cs.Leader
		return nil
	})
	t.Logf("%s took over %s after %s was killed (lease TTL %s)", newLeader, time.Since(killedAt).Round(time.Millisecond), dead.name, leaseTTL)

	// Leader work goes on: the new leader removes the dead node's
	// last-seen record once it is older than memberRetention (1s).
	f.eventually("the new leader cleans up the dead node's record", 20*time.Second, func() error {
		cs, err := f.client(other).Cluster(context.Background())
		if err != nil {
			return err
		}
		for _, n := range cs.Nodes {
			if n.Name == dead.name {
				return fmt.Errorf("%s still listed (live %t)", n.Name, n.Live)
			}
		}
		return nil
	})
	// And the fleet still takes changes.
	addSite(t, f.client(other), "after-failover.test")
	var alive []*node
	for i, n := range f.nodes {
		if i != li {
			alive = append(alive, n)
		}
	}
	f.waitServedBy("after-failover.test", alive...)
}

func TestQuorumLost(t *testing.T) {
	f := newFleet(t)
	addSite(t, f.client(0), "a.test")
	addSite(t, f.client(1), "b.test")
	f.waitServedBy("a.test", f.nodes...)
	f.waitServedBy("b.test", f.nodes...)

	f.members[1].p.stop(syscall.SIGTERM, 10*time.Second)
	f.members[2].p.stop(syscall.SIGTERM, 10*time.Second)
	for i := range f.nodes {
		start := time.Now()
		_, err := f.client(i).PutSite(context.Background(), state.Site{Domain: "during.test"}, client.Precondition{})
		if client.StatusOf(err) != http.StatusServiceUnavailable {
			t.Fatalf("write through %s without quorum: %v, want 503", f.nodes[i].name, err)
		}
		t.Logf("write through %s failed with 503 after %s (timeout %s)", f.nodes[i].name, time.Since(start).Round(time.Millisecond), storeTimeout)
	}
	for _, n := range f.nodes {
		for _, host := range []string{"a.test", "b.test"} {
			if err := n.serves(host); err != nil {
				t.Fatalf("without quorum: %v", err)
			}
		}
	}
	f.eventually("every node reports stale", 20*time.Second, func() error {
		for i := range f.nodes {
			st, err := f.client(i).Status(context.Background())
			if err != nil {
				return err
			}
			if !st.Stale || !st.Ready {
				return fmt.Errorf("%s: stale %t ready %t", st.Node, st.Stale, st.Ready)
			}
		}
		return nil
	})

	f.members[1].start(t, "existing")
	f.members[2].start(t, "existing")
	f.eventually("writes work again", 60*time.Second, func() error {
		_, err := f.client(2).PutSite(context.Background(), state.Site{Domain: "after.test"}, client.Precondition{})
		return err
	})
	f.waitServedBy("after.test", f.nodes...)
	f.waitConverged()
}

// waitConverged waits until every node is fresh and serves the latest state.
func (f *fleet) waitConverged() {
	f.t.Helper()
	f.eventually("every node converged", 30*time.Second, func() error {
		cs, err := f.client(0).Cluster(context.Background())
		if err != nil {
			return err
		}
		for _, n := range cs.Nodes {
			if n.Live && (n.Drifted || n.Stale) {
				return fmt.Errorf("%s: applied %d of %d, stale %t", n.Name, n.AppliedRevision, cs.StateRevision, n.Stale)
			}
		}
		return nil
	})
}

func TestNodeCutFromEtcd(t *testing.T) {
	f := newFleet(t)
	addSite(t, f.client(0), "before.test")
	f.waitServedBy("before.test", f.nodes...)

	cut := f.nodes[2]
	cut.cut()
	f.eventually(cut.name+" says it is stale", 20*time.Second, func() error {
		st, err := f.client(2).Status(context.Background())
		if err != nil {
			return err
		}
		if !st.Stale || st.StaleSince == nil {
			return fmt.Errorf("stale %t", st.Stale)
		}
		return nil
	})
	addSite(t, f.client(0), "while-cut.test")
	if _, err := f.client(1).DeleteSite(context.Background(), "before.test", client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	f.waitServedBy("while-cut.test", f.nodes[0], f.nodes[1])
	if err := cut.serves("before.test"); err != nil {
		t.Fatalf("cut-off node stopped serving its last state: %v", err)
	}
	if err := cut.refuses("while-cut.test"); err != nil {
		t.Fatalf("cut-off node: %v", err)
	}

	cut.restore()
	f.waitServedBy("while-cut.test", cut)
	f.eventually(cut.name+" drops the removed site", 20*time.Second, func() error { return cut.refuses("before.test") })
	f.waitConverged()
}

func TestRestartWhileEtcdUnreachable(t *testing.T) {
	f := newFleet(t)
	addSite(t, f.client(0), "cached.test")
	f.waitServedBy("cached.test", f.nodes...)
	f.waitConverged()

	n := f.nodes[1]
	f.kill(n, true) // the host dies: node and nginx
	if _, _, err := n.get("cached.test"); err == nil {
		t.Fatal("nginx still answers after the host died")
	}
	n.cut()
	f.startNode(n)
	f.eventually(n.name+" serves from its cache", 20*time.Second, func() error { return n.serves("cached.test") })
	// nginx serves a pass a moment before the node records it.
	f.eventually(n.name+" says it serves its cache", 5*time.Second, func() error {
		st, err := f.client(1).Status(context.Background())
		if err == nil && (!st.FromCache || !st.Stale || !st.Ready) {
			err = fmt.Errorf("status while serving from cache: fromCache %t stale %t ready %t", st.FromCache, st.Stale, st.Ready)
		}
		return err
	})
	addSite(t, f.client(0), "later.test")
	n.restore()
	f.waitServedBy("later.test", f.nodes...)
	f.waitConverged()
}

// TestConcurrentRevisionCheckedUpdates has three clients, each talking to
// another node, make 200 read-modify-write updates each to the same three
// sites. Each update moves a counter kept in the site's alias from N to
// N+1, conditional on the revision read. If no acknowledged write is lost,
// each site's final counter equals the updates acknowledged for it.
func TestConcurrentRevisionCheckedUpdates(t *testing.T) {
	f := newFleet(t)
	sites := []string{"s0.test", "s1.test", "s2.test"}
	for _, s := range sites {
		if _, err := f.client(0).PutSite(context.Background(), state.Site{Domain: s, Aliases: []string{"v0." + s}}, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	const perClient = 200
	var mu sync.Mutex
	acked := map[string]int{}
	conflicts := 0
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for ci := range 3 {
		wg.Go(func() {
			c := f.client(ci)
			for i := 0; i < perClient; {
				site := sites[(ci+i)%3]
				ok, err := increment(c, site)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", ci, err)
					return
				}
				mu.Lock()
				if ok {
					acked[site]++
					i++
				} else {
					conflicts++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged updates, %d conflicts answered 412", 3*perClient, conflicts)
	for _, s := range sites {
		got, err := f.client(1).GetSite(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if n := counter(got); n != acked[s] {
			t.Fatalf("%s counter = %d, but %d updates were acknowledged: updates were lost", s, n, acked[s])
		}
		host := fmt.Sprintf("v%d.%s", acked[s], s)
		f.waitServedBy(host, f.nodes...)
	}
	f.waitConverged()
}

// increment moves the site's counter by one, conditional on the revision
// read. It returns false on a 412 conflict.
func increment(c *client.Client, site string) (bool, error) {
	ctx := context.Background()
	s, err := c.GetSite(ctx, site)
	if err != nil {
		return false, err
	}
	next := state.Site{Domain: site, Aliases: []string{fmt.Sprintf("v%d.%s", counter(s)+1, site)}}
	_, err = c.PutSite(ctx, next, client.Precondition{IfMatch: s.Revision})
	switch client.StatusOf(err) {
	case 0:
		return err == nil, err
	case http.StatusPreconditionFailed:
		return false, nil
	}
	return false, err
}

func counter(s state.Site) int {
	if len(s.Aliases) != 1 {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.SplitN(s.Aliases[0], ".", 2)[0], "v"))
	if err != nil {
		return -1
	}
	return n
}

// TestKilledNodeRestartsAtOnce restarts a SIGKILLed node before its old
// lease expires: it must recognise its own registration (same data
// directory), take over the nginx it left running, and rejoin.
func TestKilledNodeRestartsAtOnce(t *testing.T) {
	f := newFleet(t)
	addSite(t, f.client(0), "kept.test")
	f.waitServedBy("kept.test", f.nodes...)
	n := f.nodes[2]
	f.kill(n, false)
	if err := n.serves("kept.test"); err != nil {
		t.Fatalf("nginx stopped serving when its node was killed: %v", err)
	}
	f.startNode(n)
	addSite(t, f.client(2), "after-restart.test")
	f.waitServedBy("after-restart.test", f.nodes...)
	f.waitConverged()
	cs, err := f.client(0).Cluster(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.Nodes {
		if !c.Live {
			t.Fatalf("%s not live after the restart", c.Name)
		}
	}
}
