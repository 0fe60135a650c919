package state_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

func sha(c byte) string { return strings.Repeat(string(c), 64) }

func TestBundlesAreImmutable(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	b := state.Bundle{App: "web", Version: "1.0.0", SHA256: sha('a'), UploadedAt: time.Now()}
	got, created, err := s.PutBundle(ctx, b)
	if err != nil || !created || got.Revision == 0 {
		t.Fatalf("first put: %+v %t %v", got, created, err)
	}
	again, created, err := s.PutBundle(ctx, b)
	if err != nil || created || again.Revision != got.Revision {
		t.Fatalf("same content again: %+v %t %v, want an idempotent success", again, created, err)
	}
	b.SHA256 = sha('b')
	if _, _, err := s.PutBundle(ctx, b); state.ErrorCode(err) != state.Exists {
		t.Fatalf("other content under the same version: %v, want Exists", err)
	}
	for _, bad := range []state.Bundle{
		{App: "Web", Version: "1", SHA256: sha('a')},
		{App: "web/../x", Version: "1", SHA256: sha('a')},
		{App: "web", Version: "../1", SHA256: sha('a')},
		{App: "web", Version: "1 2", SHA256: sha('a')},
		{App: "web", Version: "1", SHA256: "xyz"},
	} {
		if _, _, err := s.PutBundle(ctx, bad); state.ErrorCode(err) != state.Invalid {
			t.Errorf("PutBundle(%+v) = %v, want Invalid", bad, err)
		}
	}
}

func TestDeployRollbackAndInUse(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for i, v := range []string{"1", "2", "3"} {
		if _, _, err := s.PutBundle(ctx, state.Bundle{App: "web", Version: v, SHA256: sha("abc"[i])}); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, s, state.Site{Domain: "a.test"})
	if _, err := s.Deploy(ctx, "a.test", "web", "9", state.Precondition{}); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("deploy of an unknown version: %v, want NotFound", err)
	}
	if _, err := s.Deploy(ctx, "nope.test", "web", "1", state.Precondition{}); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("deploy to an unknown site: %v, want NotFound", err)
	}
	for _, v := range []string{"1", "2", "3"} {
		if _, err := s.Deploy(ctx, "a.test", "web", v, state.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	site, _, _ := s.GetSite(ctx, "a.test")
	if site.Deployment.Version != "3" || len(site.History) != 2 || site.History[0].Version != "2" {
		t.Fatalf("after three deploys: %+v", site)
	}
	// Changing the site's names keeps its deployment.
	mustPut(t, s, state.Site{Domain: "a.test", Aliases: []string{"www.a.test"}})
	if site, _, _ = s.GetSite(ctx, "a.test"); site.Deployment == nil || site.Deployment.Version != "3" {
		t.Fatalf("PutSite dropped the deployment: %+v", site)
	}
	if err := s.DeleteBundle(ctx, "web", "2"); state.ErrorCode(err) != state.InUse {
		t.Fatalf("delete of a bundle kept for rollback: %v, want InUse", err)
	}
	rolled, err := s.Rollback(ctx, "a.test", state.Precondition{})
	if err != nil || rolled.Deployment.Version != "2" || len(rolled.History) != 1 {
		t.Fatalf("rollback: %+v %v", rolled, err)
	}
	if _, err := s.Rollback(ctx, "a.test", state.Precondition{IfMatch: site.Revision}); state.ErrorCode(err) != state.Conflict {
		t.Fatalf("stale rollback: %v, want Conflict", err)
	}
	if _, err := s.Rollback(ctx, "a.test", state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rollback(ctx, "a.test", state.Precondition{}); state.ErrorCode(err) != state.Invalid {
		t.Fatalf("rollback without history: %v, want Invalid", err)
	}
	if err := s.DeleteBundle(ctx, "web", "3"); err != nil {
		t.Fatalf("delete of an unused bundle: %v", err)
	}
	snap, _ := s.Snapshot(ctx)
	if len(snap.Bundles) != 2 {
		t.Fatalf("snapshot bundles = %+v", snap.Bundles)
	}
}

func TestImportChecksDeployments(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, _, err := s.PutBundle(ctx, state.Bundle{App: "web", Version: "1", SHA256: sha('a')}); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]state.Deployment{
		"unknown version": {App: "web", Version: "2", SHA256: sha('a')},
		"other content":   {App: "web", Version: "1", SHA256: sha('b')},
	} {
		doc := state.Document{Sites: []state.Site{{Domain: "a.test", Deployment: &d}}}
		if _, err := s.Import(ctx, doc, false); state.ErrorCode(err) != state.Invalid {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	ok := state.Document{Sites: []state.Site{{Domain: "a.test", Deployment: &state.Deployment{App: "web", Version: "1", SHA256: sha('a')}}}}
	if _, err := s.Import(ctx, ok, false); err != nil {
		t.Fatal(err)
	}
	exported, _ := s.Export(ctx)
	if len(exported.Sites) != 1 || exported.Sites[0].Deployment == nil {
		t.Fatalf("export = %+v", exported)
	}
	// The export imports back unchanged.
	if res, err := s.Import(ctx, exported, false); err != nil || len(res.Changes) != 0 {
		t.Fatalf("re-import: %+v %v", res, err)
	}
}
