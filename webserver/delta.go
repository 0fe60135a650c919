package webserver

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// liveDiff is how a plan to serve differs from the live one, site by site.
type liveDiff struct {
	changed []Site          // new, or different from their live form
	old     map[string]Site // the live forms of the changed sites that were live
	removed []Site          // live sites the plan does not have
}

// diffOf derives how final, assembled from sel with the changed sites in
// accepted, differs from the live sites. selectSites compared every site
// with its live form already: only the accepted changes, the live forms
// they replace (sel.fallback holds each live site's form), the fallbacks
// assemble dropped and the live sites the plan left are looked at.
func (s *Server) diffOf(sel *selection, accepted map[string]bool, dropped []Site) liveDiff {
	d := liveDiff{old: map[string]Site{}, removed: dropped}
	for _, site := range sel.sites {
		changed, ok := sel.changed[site.Domain]
		if !ok || !accepted[site.Domain] {
			continue
		}
		d.changed = append(d.changed, changed)
		if old, wasLive := sel.fallback[site.Domain]; wasLive {
			d.old[site.Domain] = old
		}
	}
	if sel.live == len(s.liveSites) {
		return d
	}
	for _, old := range s.liveSites {
		if _, in := slices.BinarySearchFunc(sel.sites, old.Domain, siteDomainCmp); !in {
			d.removed = append(d.removed, old)
		}
	}
	return d
}

// onlyLinks reports whether the diff changes nothing nginx's config names:
// the changed sites differ from their live forms only in their roots, and
// the new and removed ones are plain.
func (d liveDiff) onlyLinks() bool {
	for _, site := range d.changed {
		old, ok := d.old[site.Domain]
		if !ok {
			if !site.plain() {
				return false
			}
			continue
		}
		old.Root, site.Root = "", ""
		if !old.equal(site) {
			return false
		}
	}
	for _, old := range d.removed {
		if !old.plain() {
			return false
		}
	}
	return true
}

// relinkIn makes the links of the diff's changed sites, after their
// certificate sets; it returns how many links it switched. Links of sites
// the diff does not name are left alone: they are right already.
func (s *Server) relinkIn(plan Plan, d liveDiff) (int, error) {
	hosts, certs := map[string]string{}, map[string]string{}
	for _, site := range d.changed {
		s.opts.siteLinks(plan, site, hosts, certs)
		if err := s.opts.siteCertSets(plan, site); err != nil {
			return 0, err
		}
	}
	nh, err := s.hosts.update(hosts)
	if err != nil {
		return nh, err
	}
	nc, err := s.certs.update(certs)
	return nh + nc, err
}

// relinkOut removes the links of names the diff's old and removed forms
// had and its changed sites no longer use; it returns how many it removed.
func (s *Server) relinkOut(plan Plan, d liveDiff) (int, error) {
	keepHosts, keepCerts := map[string]string{}, map[string]string{}
	for _, site := range d.changed {
		s.opts.siteLinks(plan, site, keepHosts, keepCerts)
	}
	dropHosts, dropCerts := map[string]string{}, map[string]string{}
	gone := make([]Site, 0, len(d.old)+len(d.removed))
	for _, old := range d.old {
		gone = append(gone, old)
	}
	gone = append(gone, d.removed...)
	for _, old := range gone {
		s.opts.siteLinks(s.livePlan, old, dropHosts, dropCerts)
	}
	n1, err1 := s.hosts.remove(dropHosts, keepHosts)
	n2, err2 := s.certs.remove(dropCerts, keepCerts)
	if n2 == 0 && err2 == nil {
		return n1, err1
	}
	return n1 + n2, errors.Join(err1, err2, s.opts.pruneCertSets(s.certs))
}

// remove deletes the links of the names in drop that keep does not have
// (prune is remove of every live name). It returns how many it removed.
func (l *linkSet) remove(drop, keep map[string]string) (int, error) {
	n := 0
	var errs []error
	for name := range drop {
		if _, ok := keep[name]; ok {
			continue
		}
		if _, ok := l.live[name]; !ok {
			continue
		}
		if err := os.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		delete(l.live, name)
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("remove links: %w", err)
	}
	return n, nil
}

func byDomain(a, b Site) int                  { return cmp.Compare(a.Domain, b.Domain) }
func siteDomainCmp(s Site, domain string) int { return cmp.Compare(s.Domain, domain) }
