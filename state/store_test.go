package state_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func newStore(t *testing.T, opts ...etcdtest.Option) (*state.Store, *etcdtest.Server) {
	t.Helper()
	e := etcdtest.New(t, opts...)
	s, err := state.NewStore(state.Options{Client: e.Client(t), Prefix: "/test", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s, e
}

func mustPut(t *testing.T, s *state.Store, site state.Site) state.Site {
	t.Helper()
	got, err := s.PutSite(context.Background(), site, state.Precondition{})
	if err != nil {
		t.Fatalf("PutSite(%s): %v", site.Domain, err)
	}
	return got
}

func TestPutGetDelete(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	put := mustPut(t, s, state.Site{Domain: "Example.com", Aliases: []string{"www.example.com"}, Options: state.SiteOptions{RedirectAliases: true}})
	if put.Domain != "example.com" || put.Revision == 0 {
		t.Fatalf("put = %+v", put)
	}
	got, _, err := s.GetSite(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(put) || got.Revision != put.Revision {
		t.Fatalf("got %+v, want %+v", got, put)
	}
	again := mustPut(t, s, put)
	if again.Revision != put.Revision {
		t.Fatalf("identical put changed revision %d -> %d", put.Revision, again.Revision)
	}
	if _, err := s.DeleteSite(ctx, "example.com", state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetSite(ctx, "example.com"); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := s.DeleteSite(ctx, "example.com", state.Precondition{}); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("second delete: %v", err)
	}
	// The names are free again.
	mustPut(t, s, state.Site{Domain: "www.example.com"})
}

func TestNamesAreUniqueAcrossSites(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	mustPut(t, s, state.Site{Domain: "a.com", Aliases: []string{"shared.com"}})
	before, _ := s.Snapshot(ctx)
	for _, site := range []state.Site{
		{Domain: "shared.com"},
		{Domain: "b.com", Aliases: []string{"shared.com"}},
		{Domain: "b.com", Aliases: []string{"a.com"}},
	} {
		if _, err := s.PutSite(ctx, site, state.Precondition{}); state.ErrorCode(err) != state.NameTaken {
			t.Errorf("PutSite(%+v) err = %v, want NameTaken", site, err)
		}
	}
	after, _ := s.Snapshot(ctx)
	if len(after.Sites) != len(before.Sites) {
		t.Fatalf("state changed: %+v", after.Sites)
	}
	// Moving an alias off a site frees it for another.
	mustPut(t, s, state.Site{Domain: "a.com"})
	mustPut(t, s, state.Site{Domain: "b.com", Aliases: []string{"shared.com"}})
}

func TestPreconditions(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	v1, err := s.PutSite(ctx, state.Site{Domain: "a.com"}, state.Precondition{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutSite(ctx, state.Site{Domain: "a.com"}, state.Precondition{IfNoneMatch: true}); state.ErrorCode(err) != state.Exists {
		t.Fatalf("create existing: %v, want Exists", err)
	}
	v2, err := s.PutSite(ctx, state.Site{Domain: "a.com", Aliases: []string{"b.com"}}, state.Precondition{IfMatch: v1.Revision})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.PutSite(ctx, state.Site{Domain: "a.com", Aliases: []string{"c.com"}}, state.Precondition{IfMatch: v1.Revision})
	if state.ErrorCode(err) != state.Conflict {
		t.Fatalf("stale write: %v, want Conflict", err)
	}
	if _, err := s.DeleteSite(ctx, "a.com", state.Precondition{IfMatch: v1.Revision}); state.ErrorCode(err) != state.Conflict {
		t.Fatalf("stale delete: %v, want Conflict", err)
	}
	got, _, _ := s.GetSite(ctx, "a.com")
	if !got.Equal(v2) {
		t.Fatalf("state = %+v, want %+v", got, v2)
	}
}

func TestImport(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	mustPut(t, s, state.Site{Domain: "keep.com"})
	mustPut(t, s, state.Site{Domain: "change.com"})
	mustPut(t, s, state.Site{Domain: "drop.com", Aliases: []string{"alias.com"}})
	doc, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := state.Document{Revision: doc.Revision, Sites: []state.Site{
		{Domain: "keep.com"},
		{Domain: "change.com", Aliases: []string{"alias.com"}},
		{Domain: "new.com"},
	}}
	dry, err := s.Import(ctx, next, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "update site change.com,remove site drop.com,add site new.com"
	if got := changesString(dry.Changes); got != want {
		t.Fatalf("dry run changes = %q, want %q", got, want)
	}
	if after, _ := s.Export(ctx); len(after.Sites) != 3 || after.Sites[1].Domain != "drop.com" {
		t.Fatalf("dry run wrote: %+v", after.Sites)
	}
	if _, err := s.Import(ctx, next, false); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Export(ctx)
	if got := sitesString(after.Sites); got != "change.com[alias.com] keep.com[] new.com[]" {
		t.Fatalf("after import: %s", got)
	}
	// The old export is stale now.
	if _, err := s.Import(ctx, doc, false); state.ErrorCode(err) != state.Conflict {
		t.Fatalf("stale import: %v, want Conflict", err)
	}
	// An invalid document changes nothing.
	bad := state.Document{Sites: []state.Site{{Domain: "ok.com"}, {Domain: "bad;com"}}}
	if _, err := s.Import(ctx, bad, false); state.ErrorCode(err) != state.Invalid {
		t.Fatalf("invalid import: %v, want Invalid", err)
	}
	dup := state.Document{Sites: []state.Site{{Domain: "ok.com"}, {Domain: "ok2.com", Aliases: []string{"ok.com"}}}}
	if _, err := s.Import(ctx, dup, false); state.ErrorCode(err) != state.NameTaken {
		t.Fatalf("duplicate import: %v, want NameTaken", err)
	}
	if again, _ := s.Export(ctx); sitesString(again.Sites) != sitesString(after.Sites) {
		t.Fatalf("rejected import changed the state: %s", sitesString(again.Sites))
	}
	// Names follow the import: alias.com belongs to change.com now.
	if _, err := s.PutSite(ctx, state.Site{Domain: "alias.com"}, state.Precondition{}); state.ErrorCode(err) != state.NameTaken {
		t.Fatalf("alias moved by import: %v, want NameTaken", err)
	}
	mustPut(t, s, state.Site{Domain: "drop.com"})
}

func TestLargeImportIsNeverVisibleHalfDone(t *testing.T) {
	e := etcdtest.New(t, etcdtest.WithMaxTxnOps(16))
	cli := e.Client(t)
	store, err := state.NewStore(state.Options{Client: cli, Prefix: "/test", MaxTxnOps: 16})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var doc state.Document
	for i := range 200 {
		doc.Sites = append(doc.Sites, state.Site{Domain: fmt.Sprintf("s%03d.example", i), Aliases: []string{fmt.Sprintf("www.s%03d.example", i)}})
	}
	// Every write under the state, each transaction of the import included.
	watch := cli.Watch(ctx, store.Keys().State(), clientv3.WithPrefix())
	done := make(chan error, 1)
	go func() { _, err := store.Import(ctx, doc, false); done <- err }()
	var snaps []*state.Snapshot
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		case <-watch:
			snap, err := store.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, snap)
		}
	}
	final, _ := store.Snapshot(ctx)
	snaps = append(snaps, final)
	for _, snap := range snaps {
		if snap.PendingImport == "" && len(snap.Sites) != 0 && len(snap.Sites) != 200 {
			t.Fatalf("snapshot at %d shows %d of 200 sites without a pending marker", snap.Revision, len(snap.Sites))
		}
	}
	if final.PendingImport != "" || len(final.Sites) != 200 {
		t.Fatalf("final: pending=%q sites=%d", final.PendingImport, len(final.Sites))
	}
}

func TestUnavailableWithinTimeout(t *testing.T) {
	e := etcdtest.New(t)
	s, err := state.NewStore(state.Options{Client: e.Client(t), Prefix: "/test", Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, state.Site{Domain: "a.com"})
	e.Stop()
	start := time.Now()
	_, err = s.PutSite(context.Background(), state.Site{Domain: "b.com"}, state.Precondition{})
	if state.ErrorCode(err) != state.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("write took %s to fail", elapsed)
	}
	e.Start()
	mustPut(t, s, state.Site{Domain: "b.com"})
}

func changesString(cs []state.Change) string {
	out := ""
	for i, c := range cs {
		if i > 0 {
			out += ","
		}
		out += c.Action + " " + c.Kind + " " + c.Name
	}
	return out
}

func sitesString(sites []state.Site) string {
	out := ""
	for i, s := range sites {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%s%v", s.Domain, s.Aliases)
	}
	return out
}
