package webserver

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
)

// liveDiff is how a plan to serve differs from the live one, site by site.
type liveDiff struct {
	changed []Site          // new, or different from their live form
	old     map[string]Site // the live forms of the changed sites that were live
	removed []Site          // live sites the plan does not have
}

// diffLive compares plan's sites with the live ones: one lookup per site,
// and a set of the plan's domains only when sites were removed.
func (s *Server) diffLive(plan Plan) liveDiff {
	d := liveDiff{old: map[string]Site{}}
	seen := 0
	for _, site := range plan.Sites {
		old, ok := s.liveSites[site.Domain]
		if ok {
			seen++
			if old.equal(site) {
				continue
			}
			d.old[site.Domain] = old
		}
		d.changed = append(d.changed, site)
	}
	if seen < len(s.liveSites) {
		in := make(map[string]bool, len(plan.Sites))
		for _, site := range plan.Sites {
			in[site.Domain] = true
		}
		for domain, old := range s.liveSites {
			if !in[domain] {
				d.removed = append(d.removed, old)
			}
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

// siteLinks adds to hosts and certs the links site needs.
func (o Options) siteLinks(plan Plan, site Site, hosts, certs map[string]string) {
	root := cmp.Or(site.Root, plan.PlaceholderRoot)
	hosts[site.Domain] = root
	if !site.RedirectAliases {
		for _, a := range site.Aliases {
			hosts[a] = root
		}
	}
	if plan.HTTPSListen == "" || site.TLS == nil {
		return
	}
	for _, c := range site.TLS.Certificates {
		for _, n := range c.Names {
			certs[n] = o.certSet(c)
		}
	}
}

// relinkIn makes the links of the diff's changed sites, after their
// certificate sets; it returns how many links it switched. Links of sites
// the diff does not name are left alone: they are right already.
func (s *Server) relinkIn(plan Plan, d liveDiff) (int, error) {
	hosts, certs := map[string]string{}, map[string]string{}
	for _, site := range d.changed {
		s.opts.siteLinks(plan, site, hosts, certs)
		if plan.HTTPSListen != "" && site.TLS != nil {
			for _, c := range site.TLS.Certificates {
				if err := s.opts.ensureCertSet(c); err != nil {
					return 0, err
				}
			}
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

// remove deletes the links of the names in drop that keep does not have.
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
	return n, errors.Join(errs...)
}

// recordDiff updates the live sites with the diff.
func (s *Server) recordDiff(d liveDiff) {
	for _, site := range d.changed {
		s.liveSites[site.Domain] = site
	}
	for _, old := range d.removed {
		delete(s.liveSites, old.Domain)
	}
}
