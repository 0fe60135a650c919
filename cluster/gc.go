package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/state"
)

// BundleCollector returns the leader task that garbage-collects bundles
// every interval: per app it keeps the keep newest versions, and any
// version a site serves or keeps for rollback; the others leave etcd (each
// node then removes its copy), and so do the holder records of bundles that
// are gone. Every delete is fenced by the leadership.
func BundleCollector(store *state.Store, keep int, interval time.Duration, log *slog.Logger) LeaderTask {
	return func(ctx context.Context, f Fence) error {
		for {
			if err := collectBundles(ctx, store, keep, f, log); err != nil {
				return err
			}
			if !ctxutil.Sleep(ctx, interval) {
				return nil
			}
		}
	}
}

func collectBundles(ctx context.Context, store *state.Store, keep int, f Fence, log *slog.Logger) error {
	snap, err := store.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("bundle gc: %w", err)
	}
	if snap.PendingImport != "" || len(snap.Unreadable) > 0 || len(snap.BadRecords) > 0 {
		return nil // an unreadable record may name any bundle: remove nothing
	}
	live := map[string]bool{}
	for _, b := range Collectable(snap, keep) {
		if err := store.DeleteBundle(ctx, b.App, b.Version, f.Guard()); err != nil {
			if ctx.Err() != nil || state.ErrorCode(err) == state.InUse {
				continue
			}
			return fmt.Errorf("bundle gc: delete %s: %w", b.Ref(), err)
		}
		log.Info("garbage-collected bundle", "bundle", b.Ref(), "sha256", b.SHA256)
	}
	snap, err = store.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("bundle gc: %w", err)
	}
	for _, b := range snap.Bundles {
		live[b.SHA256] = true
	}
	if err := store.RemoveOrphanHolders(ctx, live, snap.Revision, f.Guard()); err != nil && ctx.Err() == nil {
		return fmt.Errorf("bundle gc: %w", err)
	}
	return nil
}

// Collectable returns the bundles of snap that garbage collection removes:
// those older than the keep newest versions of their app that no site
// deploys or keeps for rollback.
func Collectable(snap *state.Snapshot, keep int) []state.Bundle {
	byApp := map[string][]state.Bundle{}
	for _, b := range snap.Bundles {
		byApp[b.App] = append(byApp[b.App], b)
	}
	var out []state.Bundle
	for _, bs := range byApp {
		slices.SortFunc(bs, func(a, b state.Bundle) int { return b.UploadedAt.Compare(a.UploadedAt) })
		for i, b := range bs {
			if i < keep {
				continue
			}
			if _, used := state.UsedBy(snap.Sites, b.SHA256); !used {
				out = append(out, b)
			}
		}
	}
	slices.SortFunc(out, func(a, b state.Bundle) int { return strings.Compare(a.Ref(), b.Ref()) })
	return out
}

// AuditTrimmer returns the leader task that keeps the audit trail
// bounded: every interval it removes the entries older than maxAge and all
// but the newest keep, fenced by the leadership.
func AuditTrimmer(store *state.Store, keep int, maxAge, interval time.Duration, log *slog.Logger) LeaderTask {
	return func(ctx context.Context, f Fence) error {
		for {
			if err := store.TrimAudit(ctx, keep, maxAge, f.Guard()); err != nil && ctx.Err() == nil {
				if errors.Is(err, state.ErrFenceLost) {
					return err
				}
				log.Warn("could not trim the audit trail", "err", err)
			}
			if !ctxutil.Sleep(ctx, interval) {
				return nil
			}
		}
	}
}
