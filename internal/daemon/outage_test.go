package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

func TestEtcdOutage(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "a.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("a.test")

	e.Stop()
	n.waitServed("a.test")
	start := time.Now()
	_, err := n.api.PutSite(ctx, state.Site{Domain: "b.test"}, client.Precondition{})
	var apiErr *client.Error
	if client.StatusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("write with etcd down: %v, want 503", err)
	}
	if asErr(err, &apiErr); !strings.Contains(apiErr.Problem.Detail, "unreachable") {
		t.Fatalf("503 detail %q does not say the store is unreachable", apiErr.Problem.Detail)
	}
	t.Logf("write failed after %s (timeout %dms)", time.Since(start), cfg.State.Etcd.Timeout)
	n.eventually("status says stale", 10*time.Second, func() error {
		st, err := n.api.Status(ctx)
		if err != nil {
			return err
		}
		if !st.Stale || st.Etcd.Reachable || st.StaleSince == nil || !st.Ready {
			return fmt.Errorf("status = %+v", st)
		}
		return nil
	})
	n.expectReady(true)

	e.Start()
	n.eventually("writes work again", 20*time.Second, func() error {
		_, err := n.api.PutSite(ctx, state.Site{Domain: "x.test"}, client.Precondition{})
		return err
	})
	n.waitServed("x.test")
	n.waitConverged()
	n.stop()

	// A change the node misses while it is down.
	store, err := state.NewStore(state.Options{Client: e.Client(t), Prefix: cfg.State.Etcd.KeyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutSite(ctx, state.Site{Domain: "missed.test"}, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	e.Stop()

	n2 := startNode(t, cfg)
	n2.waitServed("a.test")
	n2.waitServed("x.test")
	if code, _, _, _ := n2.get("missed.test", "/"); code != 404 {
		t.Fatalf("missed.test answered %d before etcd was back", code)
	}
	n2.expectReady(true)
	st, err := n2.api.Status(ctx)
	if err != nil || !st.FromCache || !st.Stale {
		t.Fatalf("status from cache = %+v, %v", st, err)
	}

	e.Start()
	n2.waitServed("missed.test")
	n2.waitConverged()
}

// waitConverged waits until the node serves the latest state it read and
// has confirmed it against etcd.
func (n *testNode) waitConverged() {
	n.t.Helper()
	n.eventually("node converged", 10*time.Second, func() error {
		st, err := n.api.Status(context.Background())
		if err != nil {
			return err
		}
		if st.Stale || st.FromCache || st.AppliedRevision != st.DesiredRevision {
			return fmt.Errorf("status = %+v", st)
		}
		return nil
	})
}

func TestReadyzBeforeFirstApply(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	e.Stop() // no etcd and no cache: nothing to serve
	n := startNode(t, cfg)
	n.expectReady(false)
	e.Start()
	n.eventually("ready once etcd is reachable", 20*time.Second, func() error {
		if code, _ := n.readyz(); code != 200 {
			return fmt.Errorf("readyz %d", code)
		}
		return nil
	})
}

func (n *testNode) readyz() (int, map[string]any) {
	resp, err := http.Get("http://" + n.cfg.API.Listen + "/readyz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// expectReady waits until /readyz says want.
func (n *testNode) expectReady(want bool) {
	n.t.Helper()
	n.eventually(fmt.Sprintf("readyz says ready=%t", want), 10*time.Second, func() error {
		if code, body := n.readyz(); (code == 200) != want {
			return fmt.Errorf("readyz = %d %v", code, body)
		}
		return nil
	})
}

func asErr(err error, target **client.Error) bool {
	e, ok := err.(*client.Error)
	if ok {
		*target = e
	}
	return ok
}
