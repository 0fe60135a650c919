package main

import (
	"context"
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
	fi, err := os.Stat(cfg.tokenPath())
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
	err := runNode(context.Background(), cfg2, discardLogger())
	if err == nil || !strings.Contains(err.Error(), "in use by another sitefleet node") {
		t.Fatalf("second node on the same data dir: %v", err)
	}
}
