package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

func TestTwoNodesShareStateAndTokens(t *testing.T) {
	e := etcdtest.New(t)
	cfgA := nodeConfig(t, e.Endpoint())
	cfgA.NodeName = "a"
	cfgB := nodeConfig(t, e.Endpoint())
	cfgB.NodeName = "b"
	a := startNode(t, cfgA)
	b := startNode(t, cfgB)
	ctx := context.Background()

	// Node a's admin token works on node b, and a change made through b
	// is served by a.
	tokenA := a.waitToken()
	viaB := client.New("http://"+cfgB.API.Listen, tokenA)
	b.eventually("node b accepts node a's token", 5*time.Second, func() error {
		_, err := viaB.PutSite(ctx, state.Site{Domain: "shared.test"}, client.Precondition{})
		return err
	})
	a.waitServed("shared.test")
	b.waitServed("shared.test")

	// Tokens listed in api.tokens are accepted too; others are not.
	if _, err := client.New("http://"+cfgB.API.Listen, "not-a-token").ListSites(ctx); client.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("unknown token: %v, want 401", err)
	}
}

func TestConfiguredTokens(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.API.Tokens = []string{"operator-token-1"}
	n := startNode(t, cfg)
	list, err := client.New("http://"+cfg.API.Listen, "operator-token-1").ListSites(context.Background())
	if err != nil || list.Sites == nil {
		t.Fatalf("configured token: %+v, %v", list, err)
	}
	_ = n
}

func TestEmbeddedStoreDefaultPath(t *testing.T) {
	cfg := nodeConfig(t, "")
	cfg.State.Store = cluster.StoreEmbedded
	cfg.State.Etcd.Address = ""
	cfg.State.Embedded.ClientListen = etcdtest.FreeAddr(t)
	cfg.State.Embedded.PeerListen = etcdtest.FreeAddr(t)
	n := startNode(t, cfg)
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "embedded.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("embedded.test")
	fi, err := os.Stat(cfg.TokenPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	n.waitConverged()
	n.stop()

	// The state survives a restart in the data directory.
	n2 := startNode(t, cfg)
	n2.waitServed("embedded.test")
	list, err := n2.api.ListSites(ctx)
	if err != nil || len(list.Sites) != 1 || list.Sites[0].Domain != "embedded.test" {
		t.Fatalf("after restart: %+v, %v", list, err)
	}
}

func TestTwoNodesCannotShareADataDir(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	startNode(t, cfg)
	cfg2 := cfg
	cfg2.API.Listen = etcdtest.FreeAddr(t)
	err := Run(context.Background(), cfg2, discardLogger())
	if err == nil || !strings.Contains(err.Error(), "in use by another sitefleet node") {
		t.Fatalf("second node on the same data dir: %v", err)
	}
}

func TestTwoFleetsOnOneEtcdNeverSeeEachOther(t *testing.T) {
	e := etcdtest.New(t)
	cfgA := nodeConfig(t, e.Endpoint())
	cfgA.State.Etcd.KeyPrefix, cfgA.NodeName = "/fleet-a", "same-name"
	cfgB := nodeConfig(t, e.Endpoint())
	cfgB.State.Etcd.KeyPrefix, cfgB.NodeName = "/fleet-b", "same-name"
	a := startNode(t, cfgA)
	b := startNode(t, cfgB)
	ctx := context.Background()
	if _, err := a.api.PutSite(ctx, state.Site{Domain: "only-a.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	// The same domain in the other fleet is no conflict.
	if _, err := b.api.PutSite(ctx, state.Site{Domain: "only-a.test", Aliases: []string{"b.test"}}, client.Precondition{Create: true}); err != nil {
		t.Fatalf("same domain in another fleet: %v", err)
	}
	if _, err := b.api.DeleteSite(ctx, "only-a.test", client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	a.waitServed("only-a.test")
	b.waitUnknown("only-a.test")
	for _, n := range []*testNode{a, b} {
		n.eventually("one node in its fleet", 10*time.Second, func() error {
			cs, err := n.api.Cluster(ctx)
			if err != nil {
				return err
			}
			if len(cs.Nodes) != 1 || !cs.Nodes[0].Live || cs.Leader != "same-name" {
				return fmt.Errorf("cluster = %+v", cs)
			}
			return nil
		})
	}
	if _, err := client.New("http://"+cfgB.API.Listen, a.waitToken()).ListSites(ctx); client.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("fleet a's token on fleet b: %v, want 401", err)
	}
}

func TestDuplicateNodeNameIsRefused(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.NodeName = "edge-1"
	n := startNode(t, cfg)
	n.eventually("registered", 10*time.Second, func() error {
		cs, err := n.api.Cluster(context.Background())
		if err != nil || len(cs.Nodes) != 1 {
			return fmt.Errorf("%+v %v", cs, err)
		}
		return nil
	})
	other := nodeConfig(t, e.Endpoint())
	other.NodeName, other.State.Etcd.KeyPrefix = "edge-1", cfg.State.Etcd.KeyPrefix
	err := Run(context.Background(), other, discardLogger())
	if err == nil || !strings.Contains(err.Error(), `a live node named "edge-1"`) {
		t.Fatalf("second node with the same name: %v", err)
	}
	// The same data directory restarted is the same node, not a conflict.
	n.stop()
	startNode(t, cfg)
}

func TestWrongClusterKeyRefusesToStart(t *testing.T) {
	e := etcdtest.New(t)
	a := nodeConfig(t, e.Endpoint())
	a.State.Etcd.KeyPrefix, a.NodeName, a.Secrets.Key = "/keys", "a", ""
	n := startNode(t, a)
	key, err := os.ReadFile(a.SecretsKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(a.SecretsKeyPath()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated secrets.key has mode %v, want 0600", fi.Mode().Perm())
	}
	_ = n

	// Another node of the same fleet with its own generated key.
	b := nodeConfig(t, e.Endpoint())
	b.State.Etcd.KeyPrefix, b.NodeName, b.Secrets.Key = "/keys", "b", ""
	err = Run(context.Background(), b, discardLogger())
	if err == nil || !strings.Contains(err.Error(), "wrong cluster key") {
		t.Fatalf("node with another key: %v, want a wrong cluster key error", err)
	}
	// With the fleet's key it starts.
	b.Secrets.Key = strings.TrimSpace(string(key))
	startNode(t, b)
}
