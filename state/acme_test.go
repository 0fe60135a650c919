package state_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/state"
)

// guardedStore is a store with a guard that holds and one that does not,
// as a leader's fence before and after its leadership ends.
func guardedStore(t *testing.T) (s *state.Store, held, lost state.Guard) {
	t.Helper()
	s, e := newStore(t)
	if _, err := e.Client(t).Put(context.Background(), "/fence", "held"); err != nil {
		t.Fatal(err)
	}
	held = state.GuardOf(clientv3.Compare(clientv3.Value("/fence"), "=", "held"))
	lost = state.GuardOf(clientv3.Compare(clientv3.Value("/fence"), "=", "gone"))
	return s, held, lost
}

func TestACMERecords(t *testing.T) {
	s, held, lost := guardedStore(t)
	ctx := context.Background()
	before, err := s.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{"", "../x", "a/b", "a\x00b", strings.Repeat("a", 513)} {
		if _, _, err := s.GetACMECache(ctx, bad); state.ErrorCode(err) != state.Invalid {
			t.Errorf("get %q: %v, want invalid", bad, err)
		}
		if err := s.PutACMECache(ctx, bad, "v", held); state.ErrorCode(err) != state.Invalid {
			t.Errorf("put %q: %v, want invalid", bad, err)
		}
		if err := s.PutACMEStatus(ctx, bad, []byte("{}"), held); state.ErrorCode(err) != state.Invalid {
			t.Errorf("put status %q: %v, want invalid", bad, err)
		}
	}

	name := "tok_en-1+http-01"
	if err := s.PutACMECache(ctx, name, "sealed", held); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.GetACMECache(ctx, name); err != nil || !ok || v != "sealed" {
		t.Fatalf("get = %q, %v, %v", v, ok, err)
	}
	if err := s.PutACMECache(ctx, name, "other", lost); !errors.Is(err, state.ErrFenceLost) {
		t.Fatalf("write under a lost guard: %v, want ErrFenceLost", err)
	}
	if err := s.PutACMECache(ctx, name, "other", state.Guard{}); err == nil {
		t.Fatal("write under a zero guard accepted")
	}
	if v, _, _ := s.GetACMECache(ctx, name); v != "sealed" {
		t.Fatalf("refused writes changed the value to %q", v)
	}
	if err := s.PutACMEStatus(ctx, "a.test", []byte(`{"name":"a.test"}`), held); err != nil {
		t.Fatal(err)
	}
	if st, err := s.ACMEStatuses(ctx); err != nil || len(st) != 1 || string(st["a.test"]) != `{"name":"a.test"}` {
		t.Fatalf("statuses = %q, %v", st, err)
	}
	if err := s.DeleteACMEStatus(ctx, "a.test", held); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteACMECache(ctx, name, lost); !errors.Is(err, state.ErrFenceLost) {
		t.Fatalf("delete under a lost guard: %v", err)
	}
	if err := s.DeleteACMECache(ctx, name, held); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.GetACMECache(ctx, name); ok || err != nil {
		t.Fatalf("after delete: ok=%v err=%v", ok, err)
	}
	if after, _ := s.LastChange(ctx); after != before {
		t.Errorf("ACME records moved the state revision from %d to %d", before, after)
	}
}

func TestWatchChanges(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	changes := s.WatchChanges(ctx)
	mustPut(t, s, state.Site{Domain: "a.test"})
	if err := <-changes; err != nil {
		t.Fatalf("change: %v", err)
	}
	cancel()
	for range changes { // closes once ctx ends
	}
}

func TestRemoveOrphanHolders(t *testing.T) {
	s, held, lost := guardedStore(t)
	ctx := context.Background()
	live, gone := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, sha := range []string{live, gone} {
		for _, node := range []string{"n1", "n2"} {
			if err := s.AddHolder(ctx, sha, node); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, _ := s.LastChange(ctx)
	mustPut(t, s, state.Site{Domain: "moved.test"}) // the state moves on
	now, _ := s.LastChange(ctx)
	holders := func(sha string) int {
		h, err := s.Holders(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		return len(h)
	}
	if err := s.RemoveOrphanHolders(ctx, map[string]bool{live: true}, old, held); err != nil || holders(gone) != 2 {
		t.Fatalf("read at a stale revision: err=%v, %d holders left, want 2", err, holders(gone))
	}
	if err := s.RemoveOrphanHolders(ctx, map[string]bool{live: true}, now, lost); !errors.Is(err, state.ErrFenceLost) || holders(gone) != 2 {
		t.Fatalf("under a lost guard: err=%v, %d holders left", err, holders(gone))
	}
	if err := s.RemoveOrphanHolders(ctx, map[string]bool{live: true}, now, held); err != nil {
		t.Fatal(err)
	}
	if holders(gone) != 0 || holders(live) != 2 {
		t.Fatalf("holders: gone %d (want 0), live %d (want 2)", holders(gone), holders(live))
	}
}
