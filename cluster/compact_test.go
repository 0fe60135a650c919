package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/state"
)

// The leader compacts history older than the retention, and keeps what is
// newer readable: a watch from a recent revision still catches up.
func TestCompactorBoundsHistory(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	ctx := context.Background()
	first, err := cli.Put(ctx, "/x/k", "0")
	if err != nil {
		t.Fatal(err)
	}
	stats := &CompactStats{}
	task := Compactor(cli, testKeys, 50*time.Millisecond, 300*time.Millisecond, time.Second, stats, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, _ := runMember(t, cli, "a", "a", func(o *MemberOptions) { o.Tasks = []LeaderTask{task} })
	testutil.WaitFor(t, "a leads", 5*time.Second, a.IsLeader)
	for i := range 50 {
		if _, err := cli.Put(ctx, "/x/k", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	testutil.WaitFor(t, "history before the retention is compacted", 5*time.Second, func() bool {
		_, err := cli.Get(ctx, "/x/k", clientv3.WithRev(first.Header.Revision))
		return errors.Is(err, rpctypes.ErrCompacted)
	})
	if stats.Compactions() == 0 || stats.Revision() < first.Header.Revision {
		t.Fatalf("stats: %d compactions, revision %d", stats.Compactions(), stats.Revision())
	}
	resp, err := cli.Get(ctx, testKeys.Prefix+"/compaction")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("compaction record: %v %v", resp, err)
	}
	// What is newer than the retention stays readable.
	recent, err := cli.Put(ctx, "/x/k", "recent")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "/x/k", clientv3.WithRev(recent.Header.Revision)); err != nil {
		t.Fatalf("a revision newer than the retention: %v", err)
	}
}

// A node that no longer leads compacts nothing: the target is written
// under the fence first.
func TestCompactorFencedOut(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	ctx := context.Background()
	first, err := cli.Put(ctx, "/x/k", "0")
	if err != nil {
		t.Fatal(err)
	}
	lost := Fence{cli: cli, Key: testKeys.Leader() + "gone", Rev: 1} // no such key: the leadership is gone
	c := &compactor{cli: cli, key: testKeys.Prefix + "/compaction", retention: time.Millisecond, timeout: time.Second, stats: &CompactStats{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	now := time.Now()
	for i := range 3 {
		if _, err := cli.Put(ctx, "/x/k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		err = c.step(ctx, lost, now.Add(time.Duration(i)*time.Second))
	}
	if !errors.Is(err, state.ErrFenceLost) {
		t.Fatalf("step under a lost fence: %v", err)
	}
	if _, err := cli.Get(ctx, "/x/k", clientv3.WithRev(first.Header.Revision)); err != nil {
		t.Fatalf("history was compacted by a node that does not lead: %v", err)
	}
}
