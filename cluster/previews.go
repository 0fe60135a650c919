package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// previewRecheck is how often the expirer looks at the state when it
// neither changed nor has a preview due.
const previewRecheck = 10 * time.Minute

// PreviewExpirer returns the leader task that removes deploy previews
// whose time is up, each removal fenced by the leadership. It looks at the
// state when it changes and when the next preview is due (see
// OnStateChange); snaps may be nil (it then reads and watches store).
func PreviewExpirer(store *state.Store, snaps Snapshots, log *slog.Logger) LeaderTask {
	return func(ctx context.Context, f Fence) error {
		return OnStateChange(ctx, store, snaps, previewRecheck, func() (time.Duration, error) {
			next, err := expirePreviews(ctx, store, snaps, f, log)
			if errors.Is(err, state.ErrFenceLost) {
				return 0, err
			}
			if err != nil && ctx.Err() == nil {
				log.Warn("could not expire previews", "err", err)
				return time.Minute, nil // try again; do not end the task
			}
			if next.IsZero() {
				return 0, nil
			}
			return max(time.Until(next), 10*time.Millisecond), nil
		})
	}
}

// expirePreviews removes the previews due now and returns when the next
// one is due (zero for none).
func expirePreviews(ctx context.Context, store *state.Store, snaps Snapshots, f Fence, log *slog.Logger) (time.Time, error) {
	var snap *state.Snapshot
	var err error
	if snaps != nil {
		snap, err = snaps.Snapshot(ctx)
	} else {
		snap, err = store.Snapshot(ctx)
	}
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
