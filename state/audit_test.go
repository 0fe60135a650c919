package state_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// The audit trail reads back oldest first, from a time, and the leader
// trims it by count and by age; a lost leadership trims nothing.
func TestAuditTrailKeptBounded(t *testing.T) {
	s, held, lost := guardedStore(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var entries []state.AuditEntry
	for i := range 10 {
		entries = append(entries, state.AuditEntry{Time: now.Add(time.Duration(i-10) * time.Hour), Node: "n1", TokenID: "tok_0123456789abcdef",
			Action: "PUT /v1/sites/{domain}", Target: fmt.Sprintf("domain=s%d.test", i), Status: 200})
	}
	if err := s.AppendAudit(ctx, entries); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListAudit(ctx, time.Time{}, 100)
	if err != nil || len(all) != 10 || all[0].Target != "domain=s0.test" || all[9].Target != "domain=s9.test" {
		t.Fatalf("list: %d %v", len(all), err)
	}
	recent, err := s.ListAudit(ctx, now.Add(-3*time.Hour), 100)
	if err != nil || len(recent) != 3 || recent[0].Target != "domain=s7.test" {
		t.Fatalf("since 3h ago: %+v %v", recent, err)
	}
	if last, _ := s.ListAudit(ctx, time.Time{}, 2); len(last) != 2 || last[1].Target != "domain=s9.test" {
		t.Fatalf("the newest 2: %+v", last)
	}

	if err := s.TrimAudit(ctx, 5, 24*time.Hour, lost); !errors.Is(err, state.ErrFenceLost) {
		t.Fatalf("trim under a lost leadership: %v", err)
	}
	if got, _ := s.ListAudit(ctx, time.Time{}, 100); len(got) != 10 {
		t.Fatalf("a lost leadership trimmed: %d left", len(got))
	}
	if err := s.TrimAudit(ctx, 5, 24*time.Hour, held); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListAudit(ctx, time.Time{}, 100); len(got) != 5 || got[0].Target != "domain=s5.test" {
		t.Fatalf("kept by count: %+v", got)
	}
	if err := s.TrimAudit(ctx, 100, 150*time.Minute, held); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListAudit(ctx, time.Time{}, 100); len(got) != 2 || got[0].Target != "domain=s8.test" {
		t.Fatalf("kept by age: %+v", got)
	}
	// Within its bounds the trail is not written at all: even a lost
	// leadership's guard, which would fail any write, is not tried.
	if err := s.TrimAudit(ctx, 100, 150*time.Minute, lost); err != nil {
		t.Fatalf("trim of a trail within its bounds: %v", err)
	}
}
