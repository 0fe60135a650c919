package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/faultproxy"
	"github.com/sitefleet/sitefleet/state"
)

// TestPartitionAndCompaction cuts a node from etcd while the state changes
// and etcd compacts the history it would need to resume its watch; when the
// link comes back, the node must converge anyway.
func TestPartitionAndCompaction(t *testing.T) {
	for _, mode := range []string{"cut", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			e := etcdtest.New(t)
			proxy, err := faultproxy.Start(e.Endpoint()[len("http://"):])
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			cfg := nodeConfig(t, "http://"+proxy.Addr())
			n := startNode(t, cfg)
			ctx := context.Background()
			if _, err := n.api.PutSite(ctx, state.Site{Domain: "before.test"}, client.Precondition{}); err != nil {
				t.Fatal(err)
			}
			n.waitServed("before.test")
			n.waitConverged()

			if mode == "cut" {
				proxy.Cut()
			} else {
				proxy.Blackhole()
			}
			direct := e.Client(t)
			store, err := state.NewStore(state.Options{Client: direct, Prefix: cfg.State.Etcd.KeyPrefix})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := store.PutSite(ctx, state.Site{Domain: fmt.Sprintf("during%d.test", i)}, state.Precondition{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := store.DeleteSite(ctx, "before.test", state.Precondition{}); err != nil {
				t.Fatal(err)
			}
			rev, err := store.LastChange(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := direct.Compact(ctx, rev); err != nil {
				t.Fatal(err)
			}
			// Cut off, the node keeps serving what it had and says so.
			n.waitServed("before.test")
			n.eventually("status turns stale", 10*time.Second, func() error {
				st, err := n.api.Status(ctx)
				if err != nil {
					return err
				}
				if !st.Stale || st.Etcd.Reachable {
					return fmt.Errorf("status = %+v", st)
				}
				return nil
			})

			proxy.Restore()
			for i := range 5 {
				n.waitServed(fmt.Sprintf("during%d.test", i))
			}
			n.waitUnknown("before.test")
			n.waitConverged()
		})
	}
}
