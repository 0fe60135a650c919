package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/faultproxy"
	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/state"
)

var testKeys = state.Keys{Prefix: "/test"}

// runMember starts a member and returns a function that stops it.
func runMember(t *testing.T, cli *clientv3.Client, name, id string, tweak func(*MemberOptions)) (*Member, func()) {
	t.Helper()
	opts := MemberOptions{
		Client: cli, Keys: testKeys, Name: name, ID: id, TTL: 2 * time.Second,
		PublishInterval: 100 * time.Millisecond, Timeout: time.Second,
		Record: func() NodeRecord { return NodeRecord{Version: "test", Ready: true} },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tweak != nil {
		tweak(&opts)
	}
	m, err := NewMember(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return m, stop
}

func view(t *testing.T, cli *clientv3.Client) View {
	t.Helper()
	v, err := ReadView(context.Background(), cli, testKeys)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func liveNames(v View) string {
	var names []string
	for _, n := range v.Nodes {
		if n.Live {
			names = append(names, n.Name)
		}
	}
	return strings.Join(names, ",")
}

func TestRegistryAndNameConflicts(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	_, stopA := runMember(t, cli, "n1", "data-a", nil)
	testutil.WaitFor(t, "n1 registered", 5*time.Second, func() bool { return liveNames(view(t, cli)) == "n1" })

	other, _ := NewMember(MemberOptions{Client: cli, Keys: testKeys, Name: "n1", ID: "data-b", Record: func() NodeRecord { return NodeRecord{} }})
	if err := other.CheckName(context.Background()); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("another data dir with a live name: %v, want ErrNameInUse", err)
	}
	same, _ := NewMember(MemberOptions{Client: cli, Keys: testKeys, Name: "n1", ID: "data-a", Record: func() NodeRecord { return NodeRecord{} }})
	if err := same.CheckName(context.Background()); err != nil {
		t.Fatalf("the same data dir restarted: %v", err)
	}

	// A node that stops leaves the registry at once; its last-seen record stays.
	stopA()
	v := view(t, cli)
	if liveNames(v) != "" || len(v.Nodes) != 1 || v.Nodes[0].Live {
		t.Fatalf("after stop: %+v", v.Nodes)
	}
	if err := other.CheckName(context.Background()); err != nil {
		t.Fatalf("name of a stopped node: %v", err)
	}
}

func TestElectionFailoverAndDisallow(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	a, stopA := runMember(t, cli, "a", "a", nil)
	testutil.WaitFor(t, "a leads", 5*time.Second, a.IsLeader)
	b, _ := runMember(t, cli, "b", "b", nil)
	c, _ := runMember(t, cli, "c", "c", func(o *MemberOptions) { o.DisallowLeadership = true })
	testutil.WaitFor(t, "b and c registered", 5*time.Second, func() bool { return liveNames(view(t, cli)) == "a,b,c" })
	if b.IsLeader() || c.IsLeader() {
		t.Fatal("two leaders")
	}
	if v := view(t, cli); v.Leader != "a" {
		t.Fatalf("view leader = %q, want a", v.Leader)
	}
	stopA()
	took := testutil.WaitFor(t, "b takes over after a resigns", 5*time.Second, b.IsLeader)
	t.Logf("failover after a clean stop took %s", took)
	time.Sleep(300 * time.Millisecond)
	if c.IsLeader() {
		t.Fatal("a node with disallowLeadership leads")
	}
	testutil.WaitFor(t, "b's record says leader", 5*time.Second, func() bool {
		for _, n := range view(t, cli).Nodes {
			if n.Name == "b" {
				return n.Live && n.Leader
			}
		}
		return false
	})
}

// TestFencing shows that a leader whose lease was lost cannot write any
// more, even though its process still believes it leads.
func TestFencing(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	fences := make(chan Fence, 1)
	task := func(ctx context.Context, f Fence) error {
		select {
		case fences <- f:
		default:
		}
		<-ctx.Done()
		return nil
	}
	a, _ := runMember(t, cli, "a", "a", func(o *MemberOptions) { o.Tasks = []LeaderTask{task} })
	testutil.WaitFor(t, "a leads", 5*time.Second, a.IsLeader)
	f := <-fences
	if err := f.txn(context.Background(), nil, clientv3.OpPut("/test/fenced", "1")); err != nil {
		t.Fatalf("fenced write while leading: %v", err)
	}
	if err := f.txn(context.Background(), []clientv3.Cmp{clientv3.Compare(clientv3.Value("/test/fenced"), "=", "2")}, clientv3.OpPut("/test/fenced", "3")); !errors.Is(err, errGuardFailed) {
		t.Fatalf("failing guard: %v, want errGuardFailed", err)
	}

	// The leader's lease is revoked behind its back (as when it is cut off
	// longer than the TTL); b wins; a's late write must fail.
	leases, err := cli.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := runMember(t, cli, "b", "b", nil)
	for _, l := range leases.Leases {
		if _, err := cli.Revoke(context.Background(), l.ID); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "b leads", 10*time.Second, b.IsLeader)
	if err := f.txn(context.Background(), nil, clientv3.OpPut("/test/fenced", "late")); !errors.Is(err, state.ErrFenceLost) {
		t.Fatalf("deposed leader's write: %v, want state.ErrFenceLost", err)
	}
	resp, _ := cli.Get(context.Background(), "/test/fenced")
	if got := string(resp.Kvs[0].Value); got != "1" {
		t.Fatalf("fenced key = %q, want 1", got)
	}
	testutil.WaitFor(t, "a steps down", 10*time.Second, func() bool { return !a.IsLeader() })
}

// TestPartitionedLeaderIsReplaced cuts the leader from etcd: its lease
// expires, it drops out of the registry, and another node leads within the
// TTL plus a margin.
func TestPartitionedLeaderIsReplaced(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	proxy, err := faultproxy.Start(strings.TrimPrefix(e.Endpoint(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	viaProxy, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + proxy.Addr()}, DialTimeout: time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()
	a, _ := runMember(t, viaProxy, "a", "a", nil)
	testutil.WaitFor(t, "a leads", 5*time.Second, a.IsLeader)
	b, _ := runMember(t, cli, "b", "b", nil)
	testutil.WaitFor(t, "b registered", 5*time.Second, func() bool { return liveNames(view(t, cli)) == "a,b" })

	proxy.Blackhole()
	took := testutil.WaitFor(t, "b leads", 2*time.Second+3*time.Second, b.IsLeader)
	t.Logf("b took over %s after a was cut off (TTL 2s)", took)
	testutil.WaitFor(t, "a leaves the registry", 5*time.Second, func() bool { return liveNames(view(t, cli)) == "b" })
	testutil.WaitFor(t, "a steps down", 10*time.Second, func() bool { return !a.IsLeader() })
	proxy.Restore()
	testutil.WaitFor(t, "a registers again", 15*time.Second, func() bool { return liveNames(view(t, cli)) == "a,b" })
	if !b.IsLeader() || a.IsLeader() {
		t.Fatalf("after a returns: a leader %t, b leader %t", a.IsLeader(), b.IsLeader())
	}
}

func TestStaleMemberCleaner(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	hourAgo := time.Now().Add(-time.Hour)
	old, _ := json.Marshal(NodeRecord{Name: "gone", UpdatedAt: hourAgo.Add(-time.Hour), GoneAt: &hourAgo})
	// Written long ago, but only now found gone: retention counts from now.
	recent, _ := json.Marshal(NodeRecord{Name: "recent", UpdatedAt: hourAgo})
	for k, v := range map[string][]byte{"gone": old, "recent": recent} {
		if _, err := cli.Put(context.Background(), testKeys.Members()+k, string(v)); err != nil {
			t.Fatal(err)
		}
	}
	cleaner := StaleMemberCleaner(cli, testKeys, time.Minute, 50*time.Millisecond, time.Second)
	a, _ := runMember(t, cli, "a", "a", func(o *MemberOptions) { o.Tasks = []LeaderTask{cleaner} })
	testutil.WaitFor(t, "a leads", 5*time.Second, a.IsLeader)
	testutil.WaitFor(t, "the stale record is removed", 5*time.Second, func() bool {
		resp, _ := cli.Get(context.Background(), testKeys.Members()+"gone")
		return resp != nil && len(resp.Kvs) == 0
	})
	testutil.WaitFor(t, "the node found gone is marked", 5*time.Second, func() bool {
		resp, _ := cli.Get(context.Background(), testKeys.Members()+"recent")
		var r NodeRecord
		return resp != nil && len(resp.Kvs) == 1 && json.Unmarshal(resp.Kvs[0].Value, &r) == nil && r.GoneAt != nil && time.Since(*r.GoneAt) < time.Minute
	})
	for _, n := range view(t, cli).Nodes {
		if n.Name == "recent" && time.Since(n.LastSeen) > time.Minute {
			t.Fatalf("last seen of a node just found gone: %s", n.LastSeen)
		}
	}
}

// An idle node does not rewrite its record every interval (etcd's history
// would grow with nothing to say); a change is written at the next tick,
// and Notify writes at once.
func TestRecordWrittenWhenItChanges(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	var applied atomic.Int64
	m, _ := runMember(t, cli, "n1", "data-a", func(o *MemberOptions) {
		o.PublishInterval = 50 * time.Millisecond
		o.Record = func() NodeRecord { return NodeRecord{Ready: true, AppliedRevision: applied.Load()} }
	})
	modRev := func() int64 {
		resp, err := cli.Get(context.Background(), m.nodeKey())
		if err != nil || len(resp.Kvs) == 0 {
			return 0
		}
		return resp.Kvs[0].ModRevision
	}
	testutil.WaitFor(t, "n1 registered and leading", 5*time.Second, func() bool { return modRev() > 0 && m.IsLeader() })
	time.Sleep(200 * time.Millisecond) // the record with the leadership goes out
	first := modRev()
	time.Sleep(400 * time.Millisecond) // 8 intervals, fewer than a heartbeat
	if got := modRev(); got != first {
		t.Errorf("an unchanged record was rewritten (mod revision %d -> %d)", first, got)
	}
	applied.Store(7)
	testutil.WaitFor(t, "the changed record written", 2*time.Second, func() bool { return modRev() > first })
	second := modRev()
	m.Notify()
	testutil.WaitFor(t, "the notified record written", 2*time.Second, func() bool { return modRev() > second })
}

// A signal on Changed publishes the record at once, with no tick to help
// (the interval is an hour).
func TestChangedPublishesAtOnce(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	changed := make(chan struct{}, 1)
	m, _ := runMember(t, cli, "n1", "data-a", func(o *MemberOptions) {
		o.PublishInterval = time.Hour
		o.Changed = changed
	})
	modRev := func() int64 {
		resp, err := cli.Get(context.Background(), m.nodeKey())
		if err != nil || len(resp.Kvs) == 0 {
			return 0
		}
		return resp.Kvs[0].ModRevision
	}
	testutil.WaitFor(t, "n1 registered", 5*time.Second, func() bool { return modRev() > 0 })
	first := modRev()
	changed <- struct{}{}
	testutil.WaitFor(t, "the record written on a signal of Changed", 2*time.Second, func() bool { return modRev() > first })
}
