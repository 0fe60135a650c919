package state_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// The outbox: enqueueing twice keeps the first copy (its attempts
// count), the cursor moves with the last write, writes under a lost
// fence change nothing, and the log and its trim keep the newest.
func TestHookOutbox(t *testing.T) {
	s, held, lost := guardedStore(t)
	ctx := context.Background()
	if err := s.AddHook(ctx, state.Hook{ID: "hook_0000000000000001", URL: "https://x/", Events: []string{"site.created"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddHook(ctx, state.Hook{ID: "hook_0000000000000001"}); state.ErrorCode(err) != state.Exists {
		t.Errorf("adding the same ID again: %v, want Exists", err)
	}
	d := state.HookDelivery{Event: state.HookEvent{ID: "evt_000000000007_aa", Type: "site.created"}, Hook: "hook_0000000000000001"}
	if err := s.EnqueueHookDeliveries(ctx, []state.HookDelivery{d}, nil, 7, held); err != nil {
		t.Fatal(err)
	}
	d.Attempts, d.LastError = 3, "boom"
	if err := s.RecordHookAttempt(ctx, d, state.HookLogEntry{}, false, held); err != nil {
		t.Fatal(err)
	}
	fresh := d
	fresh.Attempts, fresh.LastError = 0, ""
	if err := s.EnqueueHookDeliveries(ctx, []state.HookDelivery{fresh}, nil, 9, held); err != nil {
		t.Fatal(err)
	}
	out, err := s.Outbox(ctx, 10)
	if err != nil || len(out) != 1 || out[0].Attempts != 3 {
		t.Fatalf("outbox %+v %v: want the delivery with its 3 attempts", out, err)
	}
	if cursor, _, err := s.HookCursor(ctx); err != nil || cursor != 9 {
		t.Errorf("cursor %d %v, want 9", cursor, err)
	}
	if err := s.EnqueueHookDeliveries(ctx, nil, nil, 11, lost); !errors.Is(err, state.ErrFenceLost) {
		t.Errorf("enqueue under a lost fence: %v", err)
	}
	if err := s.RecordHookAttempt(ctx, d, state.HookLogEntry{}, true, lost); !errors.Is(err, state.ErrFenceLost) {
		t.Errorf("record under a lost fence: %v", err)
	}
	if cursor, _, _ := s.HookCursor(ctx); cursor != 9 {
		t.Errorf("cursor %d after a fenced-out write, want 9", cursor)
	}
	for i := range 5 {
		e := state.HookLogEntry{Time: time.Unix(1700000000+int64(i), 0), Hook: d.Hook, Event: d.Event.ID, Attempt: i + 1, Result: fmt.Sprint(i)}
		if err := s.RecordHookAttempt(ctx, d, e, i == 4, held); err != nil {
			t.Fatal(err)
		}
	}
	if out, _ := s.Outbox(ctx, 10); len(out) != 0 {
		t.Errorf("outbox after the delivery: %+v", out)
	}
	if err := s.TrimHookLog(ctx, 2, held); err != nil {
		t.Fatal(err)
	}
	log, err := s.HookLog(ctx, 10)
	if err != nil || len(log) != 2 || log[0].Result != "3" || log[1].Result != "4" {
		t.Errorf("log after trimming to 2: %+v %v", log, err)
	}
	if err := s.DeleteHook(ctx, "hook_0000000000000001"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteHook(ctx, "hook_0000000000000001"); state.ErrorCode(err) != state.NotFound {
		t.Errorf("deleting again: %v, want NotFound", err)
	}
}

// A record that does not decode is neither a creation nor a deletion:
// changes to or from it are left out of the site changes.
func TestSiteChangesSkipUnreadableRecords(t *testing.T) {
	s, e := newStore(t)
	ctx := context.Background()
	from, err := s.LastChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, state.Site{Domain: "a.test"})
	cli := e.Client(t)
	key := s.Keys().Site("a.test")
	for _, v := range []string{`{"domain": "a.test", "aliases": [`, `{"domain":"a.test"}`} {
		if _, err := cli.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	last, err := cli.Delete(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = s.WatchSiteChanges(wctx, from, func(changes []state.SiteChange, through int64) error {
		for _, c := range changes {
			got = append(got, fmt.Sprintf("%s prev=%v next=%v", c.Domain, c.Prev != nil, c.Next != nil))
		}
		if through >= last.Header.Revision {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.test prev=false next=true", "a.test prev=true next=false"}
	if !slices.Equal(got, want) {
		t.Errorf("changes %v, want %v (created, deleted; nothing for the unreadable record)", got, want)
	}
}
