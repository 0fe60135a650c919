package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// A pending deploy becomes deploy.succeeded when every live node serves
// it, deploy.failed when a node reports an error for the site or when it
// takes longer than DeployTimeout, and stays pending otherwise; only the
// hooks that want the outcome get a delivery.
func TestFollowDeploys(t *testing.T) {
	store, _, guard := leaderStore(t)
	ctx := context.Background()
	for _, h := range []model.Hook{
		{ID: "hook_00000000000000a1", URL: "https://a/", Events: []string{model.EventDeploySucceeded, model.EventDeployFailed}},
		{ID: "hook_00000000000000b2", URL: "https://b/", Events: []string{model.EventDeployStarted}},
	} {
		if err := store.AddHook(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	started := func(site string, rev int64, at time.Time) model.HookEvent {
		ev := event(model.EventDeployStarted, site, rev, at)
		ev.Deployment = &model.Deployment{App: "web", Version: "2"}
		return ev
	}
	pending := []model.HookEvent{
		started("ok.test", 10, now), started("bad.test", 11, now), started("slow.test", 12, now.Add(-time.Hour)), started("wait.test", 13, now),
	}
	if err := store.EnqueueHookDeliveries(ctx, nil, pending, 13, guard); err != nil {
		t.Fatal(err)
	}
	o := Options{Store: store, DeployTimeout: 10 * time.Minute,
		Outcome: func(_ context.Context, site string, rev int64) (bool, map[string]string, error) {
			switch site {
			case "ok.test":
				return true, nil, nil
			case "bad.test":
				return false, map[string]string{"node2": "nginx refused the site"}, nil
			}
			return false, nil, nil
		}}.withDefaults()
	if err := o.followOnce(ctx, guard); err != nil {
		t.Fatal(err)
	}
	left, err := store.PendingDeploys(ctx, 10)
	if err != nil || len(left) != 1 || left[0].Site != "wait.test" {
		t.Fatalf("pending after one pass: %+v %v, want wait.test alone", left, err)
	}
	out, err := store.Outbox(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]model.HookEvent{}
	for _, d := range out {
		if d.Hook != "hook_00000000000000a1" {
			t.Errorf("delivery to %s, which wants no outcome", d.Hook)
		}
		got[d.Event.Site] = d.Event
	}
	if len(out) != 3 || got["ok.test"].Type != model.EventDeploySucceeded || got["bad.test"].Type != model.EventDeployFailed ||
		got["bad.test"].Errors["node2"] != "nginx refused the site" || got["slow.test"].Type != model.EventDeployFailed || got["slow.test"].Errors["fleet"] == "" {
		t.Errorf("outcomes %+v", got)
	}
	if got["ok.test"].Deployment == nil || got["ok.test"].Deployment.Version != "2" || got["ok.test"].Revision != 10 {
		t.Errorf("deploy.succeeded %+v: want the deploy's deployment and revision", got["ok.test"])
	}
	// The outcome's ID depends on the deploy alone: a second leader
	// resolving the same deploy makes the same idempotency key.
	if again := event(model.EventDeploySucceeded, "ok.test", 10, now.Add(time.Hour)); again.ID != got["ok.test"].ID {
		t.Errorf("outcome IDs %s and %s", got["ok.test"].ID, again.ID)
	}
	// A failing read resolves nothing.
	o.Outcome = func(context.Context, string, int64) (bool, map[string]string, error) {
		return false, nil, errors.New("etcd away")
	}
	if err := o.followOnce(ctx, guard); err == nil {
		t.Error("a failed read of the fleet was not reported")
	}
	if left, _ := store.PendingDeploys(ctx, 10); len(left) != 1 {
		t.Errorf("pending after a failed read: %+v", left)
	}
}

// certificate.expiring is enqueued once per certificate version within
// the window, again after a renewal comes close to expiry too, and its
// markers go when the certificate is renewed.
func TestExpiringOnce(t *testing.T) {
	store, cli, guard := leaderStore(t)
	ctx := context.Background()
	o := Options{Store: store}.withDefaults()
	now := time.Now()
	// No hook wants it: nothing is recorded (checked below: the hook
	// added later gets the event).
	if err := o.expiringOnce(ctx, guard, now); err != nil {
		t.Fatal(err)
	}
	soon := certRecord(t, "soon", now.Add(3*24*time.Hour))
	far := certRecord(t, "far", now.Add(60*24*time.Hour))
	for _, c := range []state.Certificate{soon, far} {
		if _, err := store.PutCertificate(ctx, c, state.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	// A hook added after the certificates still hears of their expiry.
	if err := store.AddHook(ctx, model.Hook{ID: "hook_00000000000000c3", URL: "https://c/", Events: []string{model.EventCertExpiring}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := o.expiringOnce(ctx, guard, now); err != nil {
			t.Fatal(err)
		}
	}
	out, err := store.Outbox(ctx, 10)
	if err != nil || len(out) != 1 || out[0].Event.Type != model.EventCertExpiring || out[0].Event.Certificate.ID != "soon" {
		t.Fatalf("outbox %+v %v: want one certificate.expiring for soon", out, err)
	}
	// Delivered, then checked again: not sent twice.
	if err := store.RecordHookAttempt(ctx, out[0], model.HookLogEntry{}, true, guard); err != nil {
		t.Fatal(err)
	}
	if err := o.expiringOnce(ctx, guard, now); err != nil {
		t.Fatal(err)
	}
	if out, _ := store.Outbox(ctx, 10); len(out) != 0 {
		t.Fatalf("sent again: %+v", out)
	}
	// Renewed far ahead: the marker goes, nothing is sent.
	renewed := certRecord(t, "soon", now.Add(80*24*time.Hour))
	if _, err := store.PutCertificate(ctx, renewed, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if err := o.expiringOnce(ctx, guard, now); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, store.Keys().HookSent(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("sent markers after the renewal: %d %v, want none", resp.Count, err)
	}
}

// leaderStore returns a store on a fresh etcd, its client, and a guard
// that holds, as a leader's fence.
func leaderStore(t *testing.T) (*state.Store, *clientv3.Client, state.Guard) {
	t.Helper()
	cli := etcdtest.New(t).Client(t)
	store, err := state.NewStore(state.Options{Client: cli, Prefix: "/h", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), "/fence", "held"); err != nil {
		t.Fatal(err)
	}
	return store, cli, state.GuardOf(clientv3.Compare(clientv3.Value("/fence"), "=", "held"))
}

// certRecord makes a certificate record expiring at notAfter (the store
// checks its fields, not its PEM).
func certRecord(t *testing.T, id string, notAfter time.Time) state.Certificate {
	t.Helper()
	return state.Certificate{ID: id, Type: model.CertImported, Domains: []string{id + ".test"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: notAfter, Serial: fmt.Sprintf("%x", notAfter.UnixNano()), ChainPEM: "-----BEGIN CERTIFICATE-----", KeySealed: "v1:sealed"}
}

// The fleet's first dispatcher starts just before the oldest hook, not
// at its own start: a change made between a hook's creation and the
// leader's task starting still makes an event for it.
func TestFirstCursor(t *testing.T) {
	store, _, guard := leaderStore(t)
	ctx := context.Background()
	o := Options{Store: store}.withDefaults()
	if err := store.AddHook(ctx, model.Hook{ID: "hook_00000000000000d4", URL: "https://d/", Events: []string{model.EventSiteCreated}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutSite(ctx, state.Site{Domain: "early.test"}, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_ = o.deriveOnce(wctx, guard) // returns when wctx ends
	out, err := store.Outbox(ctx, 10)
	if err != nil || len(out) != 1 || out[0].Event.Type != model.EventSiteCreated || out[0].Event.Site != "early.test" {
		t.Fatalf("outbox %+v %v: want site.created for the site made before the task started", out, err)
	}
}

// A source's cursor moves for changes that make no event too (at most
// once per cursorEvery), so that a new leader resumes within the history
// etcd keeps.
func TestCursorMovesWithoutEvents(t *testing.T) {
	store, cli, guard := leaderStore(t)
	ctx := context.Background()
	o := Options{Store: store, cursorEvery: time.Nanosecond}.withDefaults()
	src := sources(store.Keys())[0] // the node records
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- o.deriveSource(wctx, guard, src) }()
	rec := func(applied int) string {
		b, _ := json.Marshal(cluster.NodeRecord{Ready: true, NginxRunning: true, AppliedRevision: int64(applied)})
		return string(b)
	}
	var last int64
	for i := range 3 {
		resp, err := cli.Put(ctx, store.Keys().Nodes()+"n1", rec(i)) // joined, then changes without events
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		cursor, _, err := store.HookCursorOf(ctx, src.name)
		if err == nil && cursor >= last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor %d (%v), want %d: changes without events did not move it", cursor, err, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}
