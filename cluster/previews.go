package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/state"
)

// Snapshots gives the desired state (a state.Mirror, or the store).
type Snapshots interface {
	Snapshot(ctx context.Context) (*state.Snapshot, error)
}

// previewCheckEvery bounds how long a preview outlives its expiry: new
// previews are found at the next look.
const previewCheckEvery = 30 * time.Second

// PreviewExpirer returns the leader task that removes deploy previews
// whose time is up, each removal fenced by the leadership. It looks at
// the state every previewCheckEvery, or sooner when a preview is due.
func PreviewExpirer(store *state.Store, snaps Snapshots, log *slog.Logger) LeaderTask {
	return func(ctx context.Context, f Fence) error {
		for {
			next, err := expirePreviews(ctx, store, snaps, f, log)
			if errors.Is(err, state.ErrFenceLost) {
				return err
			}
			if err != nil && ctx.Err() == nil {
				log.Warn("could not expire previews", "err", err)
			}
			wait := previewCheckEvery
			if !next.IsZero() {
				wait = min(wait, max(time.Until(next), 100*time.Millisecond))
			}
			if !ctxutil.Sleep(ctx, wait) {
				return nil
			}
		}
	}
}

// expirePreviews removes the previews due now and returns when the next
// one is due (zero for none).
func expirePreviews(ctx context.Context, store *state.Store, snaps Snapshots, f Fence, log *slog.Logger) (time.Time, error) {
	snap, err := snaps.Snapshot(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read state: %w", err)
	}
	now := time.Now()
	var next time.Time
	var errs []error
	for _, s := range snap.Sites {
		due := false
		for _, p := range s.Previews {
			switch {
			case p.ExpiresAt == nil:
			case p.Expired(now):
				due = true
			case next.IsZero() || p.ExpiresAt.Before(next):
				next = *p.ExpiresAt
			}
		}
		if !due {
			continue
		}
		gone, err := store.ExpirePreviews(ctx, s.Domain, now, f.Guard())
		if err != nil {
			if errors.Is(err, state.ErrFenceLost) {
				return next, err
			}
			errs = append(errs, fmt.Errorf("%s: %w", s.Domain, err))
			continue
		}
		for _, name := range gone {
			log.Info("preview expired", "site", s.Domain, "preview", name)
		}
	}
	return next, errors.Join(errs...)
}
