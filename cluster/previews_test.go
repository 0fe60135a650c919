package cluster

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// The expirer removes a preview when it is due, without waiting for a
// periodic look, and a preview whose time moves forward (a state change)
// is removed at that change.
func TestPreviewExpirer(t *testing.T) {
	e := etcdtest.New(t)
	cli := e.Client(t)
	ctx := context.Background()
	store, err := state.NewStore(state.Options{Client: cli, Prefix: testKeys.Prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lead, err := cli.Put(ctx, testKeys.Leader()+"me", "me")
	if err != nil {
		t.Fatal(err)
	}
	f := Fence{cli: cli, Key: testKeys.Leader() + "me", Rev: lead.Header.Revision}
	if _, _, err := store.PutBundle(ctx, state.Bundle{App: "web", Version: "1", SHA256: strings.Repeat("a", 64)}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutSite(ctx, state.Site{Domain: "a.test"}, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Second)
	later := time.Now().Add(time.Hour)
	for name, at := range map[string]time.Time{"soon": soon, "later": later} {
		if _, err := store.DeployPreview(ctx, "a.test", name, model.PreviewHost(name, "a.test", "p.test"), "web", "1", &at, state.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- PreviewExpirer(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))(tctx, f) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("expirer: %v", err)
		}
	}()
	previews := func() []string {
		site, _, err := store.GetSite(ctx, "a.test")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range site.Previews {
			names = append(names, p.Name)
		}
		return names
	}
	testutil.WaitFor(t, "the due preview to go", 10*time.Second, func() bool {
		n := previews()
		return len(n) == 1 && n[0] == "later"
	})
	// Due earlier now: a change, which the expirer acts on.
	past := time.Now().Add(-time.Second)
	if _, err := store.DeployPreview(ctx, "a.test", "later", model.PreviewHost("later", "a.test", "p.test"), "web", "1", &past, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the preview made due to go", 10*time.Second, func() bool { return len(previews()) == 0 })
}
