package tls

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/internal/ctxutil"
	"github.com/sitefleet/sitefleet/state"
)

// LeaderOptions configure the leader's certificate work.
type LeaderOptions struct {
	Store *state.Store
	// Snapshots, when set, is where the tasks read the state and learn of
	// its changes (a state.Mirror: no full read of etcd per change, and a
	// change is seen once the copy holds it); default Store and its watch.
	// Writes are guarded by revisions either way.
	Snapshots Snapshots
	Sealer    *Sealer
	// SelfSignedValidity is how long a self-signed certificate is valid.
	SelfSignedValidity time.Duration
	// RenewBefore is how long before expiry a certificate is replaced.
	RenewBefore time.Duration
	// DHBits and DHMaxAge: the size of the DH parameters and when they are
	// generated again.
	DHBits   int
	DHMaxAge time.Duration
	Logger   *slog.Logger
}

// Snapshots is a copy of the state that says when it changed.
type Snapshots = cluster.Snapshots

// snapshot reads the state through Snapshots, or Store.
func (o LeaderOptions) snapshot(ctx context.Context) (*state.Snapshot, error) {
	if o.Snapshots != nil {
		return o.Snapshots.Snapshot(ctx)
	}
	return o.Store.Snapshot(ctx)
}

// recheck is how often the leader looks at every certificate even when
// the state did not change and nothing is due sooner.
const recheck = 10 * time.Minute

// wakeAt keeps the earliest time a leader task wants to run again.
type wakeAt struct{ d time.Duration }

// at notes t (in the past: at once).
func (w *wakeAt) at(t time.Time) {
	if d := max(time.Until(t), 10*time.Millisecond); w.d == 0 || d < w.d {
		w.d = d
	}
}

// SelfSignedIssuer returns the leader task that keeps one self-signed
// certificate per site in mode selfsigned, covering its domain and
// aliases, renewed RenewBefore its expiry, and removes the self-signed
// certificates no site uses any more. It acts on every state change and
// every Recheck. Writes are fenced by the leadership.
func SelfSignedIssuer(o LeaderOptions) cluster.LeaderTask {
	return func(ctx context.Context, f cluster.Fence) error {
		return onStateChange(ctx, o, recheck, func() (time.Duration, error) {
			return syncSelfSigned(ctx, o, f.Guard())
		})
	}
}

// syncSelfSigned issues what is missing or due; it returns how long until
// the next certificate is due (0 when none is).
func syncSelfSigned(ctx context.Context, o LeaderOptions, guard state.Guard) (time.Duration, error) {
	snap, err := o.snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("self-signed certificates: %w", err)
	}
	if snap.PendingImport != "" {
		return 0, nil
	}
	var next wakeAt
	due := func(c state.Certificate) { next.at(c.NotAfter.Add(-o.RenewBefore)) }
	certs := map[string]state.Certificate{}
	for _, c := range snap.Certificates {
		certs[c.ID] = c
	}
	now := time.Now()
	wanted := map[string]bool{}
	for _, site := range snap.Sites {
		if site.ModeOf() != state.TLSSelfSigned {
			continue
		}
		id := state.AutoCertID(state.CertSelfSigned, site.Domain)
		wanted[id] = true
		names := slices.Sorted(slices.Values(site.Names()))
		cur, ok := certs[id]
		if ok && slices.Equal(cur.Domains, names) && !NeedsRenewal(cur, now, o.RenewBefore) {
			due(cur)
			continue
		}
		c, err := newSelfSigned(id, site, o, now)
		if err != nil {
			return 0, err
		}
		pre := state.Precondition{IfNoneMatch: !ok, IfMatch: cur.Revision}
		if _, err := o.Store.PutCertificate(ctx, c, pre, guard); err != nil {
			if state.ErrorCode(err) == state.Conflict || state.ErrorCode(err) == state.Exists {
				continue // deposed, or changed meanwhile: the next pass sees it
			}
			return 0, fmt.Errorf("self-signed certificate for %s: %w", site.Domain, err)
		}
		due(c)
		o.Logger.Info("issued self-signed certificate", "site", site.Domain, "names", names, "serial", c.Serial, "notAfter", c.NotAfter)
	}
	for domain := range snap.Unreadable { // served as last applied: keep its certificate
		wanted[state.AutoCertID(state.CertSelfSigned, domain)] = true
	}
	for id, c := range certs {
		if c.Type == state.CertSelfSigned && !wanted[id] {
			removeUnused(ctx, o, id, guard)
		}
	}
	return next.d, nil
}

func newSelfSigned(id string, site state.Site, o LeaderOptions, now time.Time) (state.Certificate, error) {
	chain, key, err := SelfSigned(site.Names(), o.SelfSignedValidity, now)
	if err != nil {
		return state.Certificate{}, err
	}
	p, err := ValidateImport(chain, key, site.Names(), now)
	if err != nil {
		return state.Certificate{}, fmt.Errorf("self-signed certificate for %s: %w", site.Domain, err)
	}
	return NewCertificate(id, TypeSelfSigned, p, o.Sealer, now)
}

// removeUnused deletes a certificate the leader made that no site uses;
// a site that took it up meanwhile keeps it (the delete is refused).
func removeUnused(ctx context.Context, o LeaderOptions, id string, guard state.Guard) {
	err := o.Store.DeleteCertificate(ctx, id, guard)
	switch {
	case err == nil:
		o.Logger.Info("removed certificate no site uses", "certificate", id)
	case ctx.Err() == nil && state.ErrorCode(err) != state.InUse && state.ErrorCode(err) != state.Conflict && state.ErrorCode(err) != state.NotFound:
		o.Logger.Warn("could not remove unused certificate", "certificate", id, "error", err)
	}
}

// DHParamsGenerator returns the leader task that generates DH parameters
// of DHBits bits when there are none, when they are older than DHMaxAge or
// of another size, and stores them; until then nginx uses ffdhe2048.
func DHParamsGenerator(o LeaderOptions) cluster.LeaderTask {
	return func(ctx context.Context, f cluster.Fence) error {
		for {
			p, err := o.Store.GetDHParams(ctx)
			if err != nil {
				return fmt.Errorf("dh parameters: %w", err)
			}
			next := time.Minute
			if p == nil || p.Bits != o.DHBits || time.Since(p.CreatedAt) >= o.DHMaxAge {
				start := time.Now()
				o.Logger.Info("generating DH parameters", "bits", o.DHBits)
				pemBytes, err := GenerateDHParams(ctx, o.DHBits)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("dh parameters: %w", err)
				}
				err = o.Store.PutDHParams(ctx, state.DHParams{PEM: string(pemBytes), Bits: o.DHBits, CreatedAt: time.Now().UTC()}, f.Guard())
				if err != nil {
					if ctx.Err() != nil || state.ErrorCode(err) == state.Conflict {
						return nil
					}
					return fmt.Errorf("dh parameters: %w", err)
				}
				o.Logger.Info("stored new DH parameters", "bits", o.DHBits, "took", time.Since(start).Round(time.Millisecond))
			} else {
				next = min(max(time.Until(p.CreatedAt.Add(o.DHMaxAge)), time.Second), time.Hour)
			}
			if !ctxutil.Sleep(ctx, next) {
				return nil
			}
		}
	}
}

// onStateChange is cluster.OnStateChange with the options' store and
// copy.
func onStateChange(ctx context.Context, o LeaderOptions, recheck time.Duration, pass func() (time.Duration, error)) error {
	return cluster.OnStateChange(ctx, o.Store, o.Snapshots, recheck, pass)
}
