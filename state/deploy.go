package state

import (
	"context"
	"time"
)

// Deploy makes a site serve app@version. The bundle must have been
// uploaded; the site's current deployment moves to the front of its history.
// The write is guarded by the site's revision (and pre) and by the bundle
// still existing. Errors: Invalid, NotFound (site or bundle), Conflict,
// Busy, Unavailable (*Error).
func (s *Store) Deploy(ctx context.Context, domain, app, version string, pre Precondition) (Site, error) {
	b, err := s.GetBundle(ctx, app, version)
	if err != nil {
		return Site{}, err
	}
	return s.changeDeployment(ctx, domain, pre, func(site *Site) error {
		pushDeployment(site, &Deployment{App: b.App, Version: b.Version, SHA256: b.SHA256, DeployedAt: time.Now().UTC()})
		return nil
	}, s.keys.Bundle(b.App, b.Version))
}

// pushDeployment makes next the site's deployment, the current one the
// first of its history.
func pushDeployment(site *Site, next *Deployment) {
	if site.Deployment != nil {
		site.History = append([]Deployment{*site.Deployment}, site.History...)
		if len(site.History) > MaxHistory {
			site.History = site.History[:MaxHistory]
		}
	}
	site.Deployment = next
}

// Rollback makes a site serve its previous deployment again at once, and
// drops the current one: rolling back twice goes two deployments back.
// A site without history is an Invalid *Error.
func (s *Store) Rollback(ctx context.Context, domain string, pre Precondition) (Site, error) {
	return s.changeDeployment(ctx, domain, pre, func(site *Site) error {
		if len(site.History) == 0 {
			return Errorf(Invalid, "site %q has no earlier deployment to roll back to", domain)
		}
		prev := site.History[0]
		site.Deployment, site.History = &prev, site.History[1:]
		if len(site.History) == 0 {
			site.History = nil
		}
		return nil
	})
}

// changeDeployment applies change to the stored site in one guarded
// transaction; guardKeys must still exist.
func (s *Store) changeDeployment(ctx context.Context, domain string, pre Precondition, change func(*Site) error, guardKeys ...string) (Site, error) {
	return s.changeSite(ctx, domain, pre, "", change, nil, guardKeys...)
}
