package daemon

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// An idle node writes nothing to etcd: its lease keeps it live, and its
// record is written only when it changes. etcd's revision stays still.
func TestIdleNodeWritesNothing(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	n.waitLeaderSettled(e)
	cli := e.Client(t)
	ctx := context.Background()
	rev := func() int64 {
		resp, err := cli.Get(ctx, "/none")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	// Let start-up writes (token, record, leadership) settle.
	var before int64
	n.eventually("start-up writes settle", 30*time.Second, func() error {
		r := rev()
		time.Sleep(time.Second)
		if now := rev(); now != r {
			return fmt.Errorf("revision %d -> %d", r, now)
		}
		before = r
		return nil
	})
	time.Sleep(3 * time.Second) // 30 publish intervals
	if after := rev(); after != before {
		t.Fatalf("an idle node wrote to etcd: revision %d -> %d", before, after)
	}
}

// The leader compacts etcd's history, and /metrics shows the database's
// size, the revision and the compactions.
func TestCompactionInMetrics(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.Cluster.CompactInterval = 100 * time.Millisecond
	cfg.Cluster.CompactRetention = 300 * time.Millisecond
	n := startNode(t, cfg)
	ctx := context.Background()
	for i := range 20 {
		if _, err := n.api.PutSite(ctx, state.Site{Domain: fmt.Sprintf("c%d.test", i)}, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	value := func(m, name string) float64 {
		match := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(m)
		if match == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(match[1], 64)
		return v
	}
	n.eventually("a compaction shows in /metrics", 20*time.Second, func() error {
		m := n.metrics()
		if value(m, "sitefleet_etcd_compactions_total") < 1 || value(m, "sitefleet_etcd_compacted_revision") < 1 {
			return fmt.Errorf("no compaction yet")
		}
		if value(m, "sitefleet_etcd_db_size_bytes") <= 0 || value(m, "sitefleet_etcd_revision") < value(m, "sitefleet_etcd_compacted_revision") {
			return fmt.Errorf("etcd figures missing or inconsistent")
		}
		return nil
	})
	// The node still follows changes after its history was compacted.
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "after.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("after.test")
}
