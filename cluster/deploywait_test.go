package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
)

// deploy --wait answers from the node records: it must return once every
// live node's record says it serves the revision, name the nodes still
// behind or in error until then, and stop counting a node whose record
// went away (its lease ended).
func TestWaitDeployedFollowsRecords(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	ctx := context.Background()
	put := func(name string, applied int64, siteErrs map[string]string) {
		t.Helper()
		b, err := json.Marshal(NodeRecord{Name: name, AppliedRevision: applied, SiteErrors: siteErrs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, testKeys.Nodes()+name, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	put("n1", 10, nil)
	put("n2", 9, nil)
	put("n3", 9, map[string]string{"a.test": "nginx refused this site's configuration"})

	type result struct {
		p   DeployProgress
		err error
	}
	wait := func(timeout time.Duration) chan result {
		ch := make(chan result, 1)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			p, err := WaitDeployed(wctx, cli, testKeys, "a.test", 10, time.Second)
			ch <- result{p, err}
		}()
		return ch
	}

	// Not done within the deadline: the progress says why, node by node.
	r := <-wait(300 * time.Millisecond)
	if r.err == nil || r.p.Done || len(r.p.Nodes) != 3 {
		t.Fatalf("with two nodes behind: %+v, %v", r.p, r.err)
	}
	if !r.p.Nodes[0].Serving || !strings.Contains(r.p.Nodes[1].Error, "not yet 10") || !strings.Contains(r.p.Nodes[2].Error, "nginx refused") {
		t.Errorf("progress: %+v", r.p.Nodes)
	}

	ch := wait(10 * time.Second)
	put("n2", 11, nil)
	put("n3", 10, map[string]string{"a.test": "still refused"})
	select {
	case r := <-ch:
		t.Fatalf("returned while n3 has an error for the site: %+v, %v", r.p, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	// n3 leaves the fleet: the other two serve, so the wait is over.
	start := time.Now()
	if _, err := cli.Delete(ctx, testKeys.Nodes()+"n3"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if r.err != nil || !r.p.Done || len(r.p.Nodes) != 2 {
			t.Fatalf("after n3 left: %+v, %v", r.p, r.err)
		}
		t.Logf("answered %s after the last record changed", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("did not return after the last live node served")
	}

	// Already done: answers from the first read. A record that does not
	// decode (written behind the nodes' back) names no node and holds
	// nothing up.
	if _, err := cli.Put(ctx, testKeys.Nodes()+"garbage", "{not json"); err != nil {
		t.Fatal(err)
	}
	if r := <-wait(5 * time.Second); r.err != nil || !r.p.Done || len(r.p.Nodes) != 2 {
		t.Fatalf("all live nodes serve: %+v, %v", r.p, r.err)
	}
}
