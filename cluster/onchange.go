package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/state"
)

// Snapshots is a copy of the state that says when it changed (a
// state.Mirror).
type Snapshots interface {
	Snapshot(ctx context.Context) (*state.Snapshot, error)
	// Changed returns a channel closed at the next change of the copy.
	Changed() <-chan struct{}
}

// OnStateChange runs pass now, then again whenever the state changes
// (after a short settling delay) and every recheck, or sooner when pass
// asks for it with a positive duration, until ctx ends: the loop of the
// leader tasks that act on the state. A failing pass ends it with the
// error (the leader restarts the task). With snaps it follows the copy's
// changes: the channel is taken before each pass, so no change made
// during a pass is missed, and the pass after a change reads a copy that
// holds it. Without (nil), it watches store.
func OnStateChange(ctx context.Context, store *state.Store, snaps Snapshots, recheck time.Duration, pass func() (time.Duration, error)) error {
	var watch <-chan error // the store's changes, without a copy
	if snaps == nil {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		watch = store.WatchChanges(wctx)
	}
	for {
		var changed <-chan struct{}
		if snaps != nil {
			changed = snaps.Changed()
		}
		wait, err := pass()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if wait <= 0 || wait > recheck {
			wait = recheck
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
			continue
		case <-changed:
		case err, ok := <-watch:
			if err := watchEnded(err, ok); err != nil && ctx.Err() == nil {
				t.Stop()
				return err
			}
		}
		t.Stop()
		if !ctxutil.Sleep(ctx, 100*time.Millisecond) { // let a burst of writes settle
			return nil
		}
		// One pass covers every change so far, this task's own writes
		// included.
		select {
		case err, ok := <-watch:
			if err := watchEnded(err, ok); err != nil && ctx.Err() == nil {
				return err
			}
		default:
		}
	}
}

// watchEnded returns why a value from WatchChanges ends the watch, or nil
// if it does not: an error, or the channel closing.
func watchEnded(err error, ok bool) error {
	if !ok {
		return errors.New("watch state: the watch closed")
	}
	return err
}
