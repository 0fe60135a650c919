package state

import (
	"context"
	"slices"
	"time"
)

// DeployPreview makes the site's preview called name serve app@version at
// host, beside the live deployment, creating the preview or moving it to
// the new bundle. expires, when set, is when the leader removes it. The
// write is guarded like a deploy, and claims host in the name index.
// Errors: Invalid, NotFound (site or bundle), NameTaken, Conflict, Busy,
// Unavailable (*Error).
func (s *Store) DeployPreview(ctx context.Context, domain, name, host, app, version string, expires *time.Time, pre Precondition) (Site, error) {
	if err := ValidatePreviewName(name); err != nil {
		return Site{}, err
	}
	b, err := s.GetBundle(ctx, app, version)
	if err != nil {
		return Site{}, err
	}
	p := Preview{Name: name, Host: host, Deployment: Deployment{App: b.App, Version: b.Version, SHA256: b.SHA256, DeployedAt: time.Now().UTC()}, ExpiresAt: expires}
	return s.changeSite(ctx, domain, pre, host, func(site *Site) error {
		i := slices.IndexFunc(site.Previews, func(q Preview) bool { return q.Name == name })
		if i < 0 {
			site.Previews = append(site.Previews, p)
			return nil
		}
		if site.Previews[i].Host != host {
			// The preview domain changed since it was made: it moves.
			return Errorf(Invalid, "preview %q of %s is served at %s, not %s: remove it first to move it", name, domain, site.Previews[i].Host, host)
		}
		site.Previews[i] = p
		return nil
	}, nil, s.keys.Bundle(b.App, b.Version))
}

// RemovePreview removes the site's preview called name. Errors: NotFound
// (site or preview), Conflict, Busy, Unavailable (*Error).
func (s *Store) RemovePreview(ctx context.Context, domain, name string, pre Precondition) (Site, error) {
	return s.changeSite(ctx, domain, pre, "", func(site *Site) error {
		i := slices.IndexFunc(site.Previews, func(q Preview) bool { return q.Name == name })
		if i < 0 {
			return Errorf(NotFound, "site %q has no preview %q", domain, name)
		}
		site.Previews = slices.Delete(site.Previews, i, i+1)
		return nil
	}, nil)
}

// PromotePreview makes the site serve the bundle of its preview called
// name, as a deploy of that bundle would: the live deployment moves to
// the history. The preview stays. Errors: those of Deploy, and NotFound
// for a preview that does not exist.
func (s *Store) PromotePreview(ctx context.Context, domain, name string, pre Precondition) (Site, error) {
	site, _, err := s.GetSite(ctx, domain)
	if err != nil {
		return Site{}, err
	}
	p, ok := site.Preview(name)
	if !ok {
		return Site{}, Errorf(NotFound, "site %q has no preview %q", domain, name)
	}
	d := p.Deployment
	return s.changeDeployment(ctx, domain, pre, func(site *Site) error {
		cur, ok := site.Preview(name)
		if !ok || cur.Deployment.SHA256 != d.SHA256 {
			return Errorf(Conflict, "preview %q of %s changed while it was promoted: retry", name, domain)
		}
		pushDeployment(site, &Deployment{App: d.App, Version: d.Version, SHA256: d.SHA256, DeployedAt: time.Now().UTC()})
		return nil
	}, s.keys.Bundle(d.App, d.Version))
}

// ExpirePreviews removes the site's previews whose time is up at now,
// under the leader's guard. It returns the names removed; none when the
// site is gone or has none due.
func (s *Store) ExpirePreviews(ctx context.Context, domain string, now time.Time, guard Guard) ([]string, error) {
	var gone []string
	_, err := s.changeSite(ctx, domain, Precondition{}, "", func(site *Site) error {
		gone = gone[:0]
		kept := site.Previews[:0]
		for _, p := range site.Previews {
			if p.Expired(now) {
				gone = append(gone, p.Name)
			} else {
				kept = append(kept, p)
			}
		}
		if len(gone) == 0 {
			return errNothing
		}
		site.Previews = kept
		return nil
	}, []Guard{guard})
	switch {
	case err == errNothing || ErrorCode(err) == NotFound:
		return nil, nil
	case err != nil:
		return nil, err
	}
	return gone, nil
}

// errNothing ends a change that has nothing to do.
var errNothing = Errorf(Invalid, "nothing to change")
