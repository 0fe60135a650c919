package state_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// TestMirrorFollowsTheStore checks that after each kind of change (site
// added, changed, removed, a garbage record, a bundle) and after a forced
// full read, the mirror's snapshot equals a fresh read of etcd.
func TestMirrorFollowsTheStore(t *testing.T) {
	s, e := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	m := state.NewMirror(s, nil)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	same := func(step string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			want, err := s.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Snapshot(ctx)
			if err == nil && jsonOf(got) == jsonOf(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: mirror %s (%v), etcd %s", step, jsonOf(got), err, jsonOf(want))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	same("empty")
	for i := range 3 {
		if _, err := s.PutSite(ctx, state.Site{Domain: fmt.Sprintf("s%d.test", i), Aliases: []string{fmt.Sprintf("www.s%d.test", i)}}, state.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	same("sites added")
	// A snapshot handed out never changes: the mirror changes a copy.
	held, err := m.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	heldJSON := jsonOf(held)
	if _, err := s.PutSite(ctx, state.Site{Domain: "s1.test", Options: state.SiteOptions{RedirectHTML: true}}, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteSite(ctx, "s2.test", state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSite(ctx, state.Site{Domain: "s0a.test"}, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	same("site changed, removed and added")
	if got := jsonOf(held); got != heldJSON {
		t.Errorf("a snapshot changed after it was handed out:\nwas %s\nnow %s", heldJSON, got)
	}
	if _, err := e.Client(t).Put(ctx, s.Keys().Site("bad.test"), "{not json"); err != nil {
		t.Fatal(err)
	}
	same("garbage record")
	if _, _, err := s.PutBundle(ctx, state.Bundle{App: "web", Version: "1", SHA256: fmt.Sprintf("%064x", 1), Size: 1, Files: 1, UploadedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	same("bundle")
	for _, key := range []string{s.Keys().Bundle("web", "2"), s.Keys().Cert("bad"), s.Keys().DHParams()} {
		if _, err := e.Client(t).Put(ctx, key, "{not json"); err != nil {
			t.Fatal(err)
		}
	}
	same("garbage bundle, certificate and DH parameters records")
	if snap, err := m.Snapshot(ctx); err != nil || len(snap.BadRecords) != 3 || len(snap.Bundles) != 1 {
		t.Errorf("garbage records: %v bad records, %d bundles, err %v; want the 3 named and the good bundle kept", snap.BadRecords, len(snap.Bundles), err)
	}
	before := m.Changed()
	m.Resync()
	select {
	case <-before:
	case <-time.After(5 * time.Second):
		t.Fatal("Resync did not signal a change")
	}
	same("after a full read")
	if snap, _ := m.Snapshot(ctx); snap.Unreadable["bad.test"] == "" {
		t.Errorf("the garbage record is not listed as unreadable: %v", snap.Unreadable)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestImportRepairsUnreadableRecords checks that `state set` replaces a
// site record that does not decode (or that names another site) when the
// document has the site, even in the same form as the record claims, and
// removes it when the document does not.
func TestImportRepairsUnreadableRecords(t *testing.T) {
	s, e := newStore(t)
	ctx := context.Background()
	cli := e.Client(t)
	for key, value := range map[string]string{
		s.Keys().Site("kept.test"):  "{not json",
		s.Keys().Site("gone.test"):  "{not json",
		s.Keys().Site("moved.test"): `{"domain":"other.test"}`,
	} {
		if _, err := cli.Put(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	before, err := s.Snapshot(ctx)
	if err != nil || len(before.Unreadable) != 3 {
		t.Fatalf("snapshot before: %v unreadable, err %v; want all 3", before.Unreadable, err)
	}
	doc := state.Document{Revision: before.Revision, Sites: []state.Site{{Domain: "kept.test"}, {Domain: "moved.test"}}}
	res, err := s.Import(ctx, doc, false)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if len(res.Changes) != 3 {
		t.Errorf("changes: %+v, want kept and moved updated, gone removed", res.Changes)
	}
	after, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Unreadable) != 0 || len(after.Sites) != 2 || after.Sites[0].Domain != "kept.test" || after.Sites[1].Domain != "moved.test" {
		t.Errorf("after the import: sites %+v, unreadable %v; want kept.test and moved.test, readable", after.Sites, after.Unreadable)
	}
}
