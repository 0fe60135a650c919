package state_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// A preview is part of its site's record, and its host is a name the
// fleet holds like any other: no other site can take it, a site write
// keeps it, and removing or expiring the preview frees it.
func TestPreviews(t *testing.T) {
	s, held, lost := guardedStore(t)
	ctx := context.Background()
	for i, v := range []string{"1", "2"} {
		if _, _, err := s.PutBundle(ctx, state.Bundle{App: "web", Version: v, SHA256: sha("ab"[i])}); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, s, state.Site{Domain: "a.test"})
	mustPut(t, s, state.Site{Domain: "b.test"})
	if _, err := s.Deploy(ctx, "a.test", "web", "1", state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	host := model.PreviewHost("pr-1", "a.test", "previews.test")
	if host != "pr-1--a-test.previews.test" {
		t.Fatalf("host %q", host)
	}
	soon := time.Now().Add(time.Hour).UTC()
	site, err := s.DeployPreview(ctx, "a.test", "pr-1", host, "web", "2", &soon, state.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	if site.Deployment.Version != "1" || len(site.Previews) != 1 || site.Previews[0].Deployment.Version != "2" {
		t.Fatalf("after the preview: %+v", site)
	}

	// Bad input changes nothing.
	for _, c := range []struct{ name, host, version string }{
		{"PR", host, "2"}, {"a--b", host, "2"}, {"", host, "2"}, {"x", "x--b-test.previews.test", "2"},
		{"x", "x--a-test", "2"}, {"x", "a.test", "2"}, {"x", "x--a-test.previews.test", "9"},
	} {
		if _, err := s.DeployPreview(ctx, "a.test", c.name, c.host, "web", c.version, nil, state.Precondition{}); err == nil {
			t.Errorf("preview %+v accepted", c)
		}
	}
	if _, err := s.DeployPreview(ctx, "nope.test", "x", "x--nope-test.previews.test", "web", "2", nil, state.Precondition{}); state.ErrorCode(err) != state.NotFound {
		t.Errorf("preview of a missing site: %v", err)
	}

	// The host is held: another site cannot use it as an alias.
	if _, err := s.PutSite(ctx, state.Site{Domain: "b.test", Aliases: []string{host}}, state.Precondition{}); state.ErrorCode(err) != state.NameTaken {
		t.Fatalf("alias on a preview's host: %v, want NameTaken", err)
	}
	// The site cannot take its own preview's host as an alias.
	if _, err := s.PutSite(ctx, state.Site{Domain: "a.test", Aliases: []string{host}}, state.Precondition{}); state.ErrorCode(err) != state.Invalid {
		t.Fatalf("alias on the site's own preview host: %v, want Invalid", err)
	}
	// A site write keeps the previews.
	site, err = s.PutSite(ctx, state.Site{Domain: "a.test", Aliases: []string{"www.a.test"}}, state.Precondition{})
	if err != nil || len(site.Previews) != 1 {
		t.Fatalf("site write: %+v %v", site, err)
	}
	// Moving the preview to another bundle keeps its host.
	if site, err = s.DeployPreview(ctx, "a.test", "pr-1", host, "web", "1", nil, state.Precondition{}); err != nil || site.Previews[0].ExpiresAt != nil {
		t.Fatalf("redeploy: %+v %v", site, err)
	}
	if site, err = s.DeployPreview(ctx, "a.test", "pr-1", host, "web", "2", &soon, state.Precondition{}); err != nil {
		t.Fatal(err)
	}

	// Promote: the preview's bundle goes live, the old one to the history.
	site, err = s.PromotePreview(ctx, "a.test", "pr-1", state.Precondition{})
	if err != nil || site.Deployment.Version != "2" || site.History[0].Version != "1" || len(site.Previews) != 1 {
		t.Fatalf("promote: %+v %v", site, err)
	}
	if _, err := s.PromotePreview(ctx, "a.test", "nope", state.Precondition{}); state.ErrorCode(err) != state.NotFound {
		t.Errorf("promote of a missing preview: %v", err)
	}
	// A bundle only a preview serves cannot be deleted.
	if _, _, err := s.PutBundle(ctx, state.Bundle{App: "web", Version: "3", SHA256: sha('c')}); err != nil {
		t.Fatal(err)
	}
	third := model.PreviewHost("pr-3", "a.test", "previews.test")
	if _, err := s.DeployPreview(ctx, "a.test", "pr-3", third, "web", "3", nil, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBundle(ctx, "web", "3"); state.ErrorCode(err) != state.InUse {
		t.Fatalf("delete of a previewed bundle: %v, want InUse", err)
	}
	if _, err := s.RemovePreview(ctx, "a.test", "pr-3", state.Precondition{}); err != nil {
		t.Fatal(err)
	}

	// Expiry: only under the leader's guard, only when due.
	if gone, err := s.ExpirePreviews(ctx, "a.test", time.Now(), held); err != nil || len(gone) != 0 {
		t.Fatalf("expire before time: %v %v", gone, err)
	}
	if _, err := s.ExpirePreviews(ctx, "a.test", soon, lost); !errors.Is(err, state.ErrFenceLost) {
		t.Fatalf("expire with a lost fence: %v", err)
	}
	if gone, err := s.ExpirePreviews(ctx, "a.test", soon, held); err != nil || len(gone) != 1 || gone[0] != "pr-1" {
		t.Fatalf("expire: %v %v", gone, err)
	}
	// The host is free again.
	if _, err := s.PutSite(ctx, state.Site{Domain: "b.test", Aliases: []string{host}}, state.Precondition{}); err != nil {
		t.Fatalf("alias on a freed host: %v", err)
	}
	if _, err := s.RemovePreview(ctx, "a.test", "pr-1", state.Precondition{}); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("remove of an expired preview: %v", err)
	}
	if _, err := s.DeployPreview(ctx, "a.test", "pr-1", host, "web", "2", nil, state.Precondition{}); state.ErrorCode(err) != state.NameTaken {
		t.Fatalf("preview on a taken host: %v", err)
	}
	other := model.PreviewHost("pr-2", "a.test", "previews.test")
	if _, err := s.DeployPreview(ctx, "a.test", "pr-2", other, "web", "2", nil, state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if site, err = s.RemovePreview(ctx, "a.test", "pr-2", state.Precondition{}); err != nil || site.Previews != nil {
		t.Fatalf("remove: %+v %v", site, err)
	}
	if _, err := s.PutSite(ctx, state.Site{Domain: "b.test", Aliases: []string{host, other}}, state.Precondition{}); err != nil {
		t.Fatalf("alias on a removed preview's host: %v", err)
	}
}
