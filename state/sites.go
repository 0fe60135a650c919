package state

import (
	"context"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Precondition guards a write against lost updates.
type Precondition struct {
	// IfMatch, when non-zero, requires the object's current revision (as
	// returned in Site.Revision) to equal it; otherwise the write fails
	// with a Conflict *Error.
	IfMatch int64
	// IfNoneMatch requires the object not to exist; otherwise the write
	// fails with an Exists *Error.
	IfNoneMatch bool
}

// siteView is what a write reads before it decides: the site as stored, the
// owners of the names it wants, and whether an import holds the state.
type siteView struct {
	cur     *Site
	curRev  int64
	owners  map[string]string
	pending bool
	// cert is the imported certificate the new site names, if any.
	cert *Certificate
}

// readSiteView reads, at one revision, the site, the pending marker, the
// owners of names and, when certID is not empty, that certificate.
func (s *Store) readSiteView(ctx context.Context, domain string, names []string, certID string) (siteView, error) {
	ops := []clientv3.Op{clientv3.OpGet(s.keys.Site(domain)), clientv3.OpGet(s.keys.Pending())}
	for _, n := range names {
		ops = append(ops, clientv3.OpGet(s.keys.Name(n)))
	}
	if certID != "" {
		ops = append(ops, clientv3.OpGet(s.keys.Cert(certID)))
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).Then(ops...).Commit()
	if err != nil {
		return siteView{}, s.wrap(ctx, "read site", err)
	}
	v := siteView{owners: map[string]string{}}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		site, err := decodeSite(kvs[0])
		if err != nil {
			return siteView{}, err
		}
		v.cur, v.curRev = &site, site.Revision
	}
	v.pending = len(resp.Responses[1].GetResponseRange().Kvs) > 0
	for i, n := range names {
		if kvs := resp.Responses[2+i].GetResponseRange().Kvs; len(kvs) > 0 {
			v.owners[n] = string(kvs[0].Value)
		}
	}
	if certID != "" {
		if kvs := resp.Responses[2+len(names)].GetResponseRange().Kvs; len(kvs) > 0 {
			c, err := decodeCert(kvs[0])
			if err != nil {
				return siteView{}, err
			}
			v.cert = &c
		}
	}
	return v, nil
}

func (v siteView) check(domain string, pre Precondition) error {
	if v.pending {
		return Errorf(Busy, "an import of the whole state is in progress or did not complete; run `state set` again to finish it")
	}
	if pre.IfNoneMatch && v.cur != nil {
		return Errorf(Exists, "site %q already exists", domain)
	}
	if pre.IfMatch != 0 && (v.cur == nil || v.curRev != pre.IfMatch) {
		return Errorf(Conflict, "site %q changed since revision %d (it is now at %d): read it again and retry", domain, pre.IfMatch, v.curRev)
	}
	for name, owner := range v.owners {
		if owner != domain {
			return Errorf(NameTaken, "name %q is already used by site %q", name, owner)
		}
	}
	return nil
}

// PutSite creates or replaces a site's names and options after validating
// them; its deployment and history are kept as they are. The write is one
// etcd transaction that also claims the site's names in the name index, so
// two sites can never own the same name. It returns the stored site with
// its new Revision. Errors: Invalid, Exists, Conflict, NameTaken, Busy,
// Unavailable (*Error). Writing a site identical to the stored one changes
// nothing and returns the stored one.
func (s *Store) PutSite(ctx context.Context, site Site, pre Precondition) (Site, error) {
	site, err := NormalizeSite(site)
	if err != nil {
		return Site{}, err
	}
	for range maxRetries {
		v, err := s.readSiteView(ctx, site.Domain, site.Names(), importedCertID(site))
		if err != nil {
			return Site{}, err
		}
		if err := v.check(site.Domain, pre); err != nil {
			return Site{}, err
		}
		if err := checkImportedCert(site, v.cert); err != nil {
			return Site{}, err
		}
		if v.cur == nil {
			site.Previews = nil // previews come only through DeployPreview
		}
		if v.cur != nil {
			// Deployments change only through Deploy and Rollback,
			// previews through their own calls.
			site.Deployment, site.History, site.Previews = v.cur.Deployment, v.cur.History, v.cur.Previews
			if len(site.Previews) > 0 {
				// A new alias must not be one of the previews' hosts.
				if _, err := NormalizeSite(site); err != nil {
					return Site{}, err
				}
			}
			if v.cur.Equal(site) {
				return *v.cur, nil
			}
		}
		rev, ok, err := s.commitSite(ctx, site, v, nil)
		if err != nil {
			return Site{}, err
		}
		if ok {
			site.Revision = rev
			return site, nil
		}
	}
	return Site{}, Errorf(Conflict, "site %q is being changed concurrently: retry", site.Domain)
}

// commitSite writes site and its name index entries if the stored site
// is still v's, the keys in mustExist exist, and guards hold.
func (s *Store) commitSite(ctx context.Context, site Site, v siteView, mustExist []string, guards ...Guard) (int64, bool, error) {
	val, err := marshal(site)
	if err != nil {
		return 0, false, err
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(s.keys.Site(site.Domain)), "=", v.curRev),
		clientv3.Compare(clientv3.CreateRevision(s.keys.Pending()), "=", 0),
	}
	if v.cert != nil {
		// The certificate must not change or go while the site is written.
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.Cert(v.cert.ID)), "=", v.cert.Revision))
	}
	for _, k := range mustExist {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
	}
	ops := []clientv3.Op{clientv3.OpPut(s.keys.Site(site.Domain), val)}
	var had []string
	if v.cur != nil {
		had = v.cur.Claims()
	}
	claims := site.Claims()
	for _, n := range claims {
		// The names the stored site claims are its own: the index
		// follows every site write, and this one is guarded by the
		// site's revision.
		if _, owned := v.owners[n]; !owned && !slices.Contains(had, n) {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.keys.Name(n)), "=", 0))
			ops = append(ops, clientv3.OpPut(s.keys.Name(n), site.Domain))
		}
	}
	for _, n := range had {
		if !slices.Contains(claims, n) {
			ops = append(ops, clientv3.OpDelete(s.keys.Name(n)))
		}
	}
	return s.commitFenced(ctx, "write site", guards, cmps, ops)
}

// commit runs one guarded transaction that also touches the meta key. It
// returns the revision of the write and whether the guard held.
func (s *Store) commit(ctx context.Context, what string, cmps []clientv3.Cmp, ops []clientv3.Op) (int64, bool, error) {
	return s.commitFenced(ctx, what, nil, cmps, ops)
}

// commitFenced is commit under fence, compares that hold only while a
// leader's leadership lasts: when they fail, nothing is written and the
// error is a Conflict *Error wrapping ErrFenceLost, so a caller never
// retries a write it is no longer allowed to make. The bool reports
// whether cmps held.
func (s *Store) commitFenced(ctx context.Context, what string, guards []Guard, cmps []clientv3.Cmp, ops []clientv3.Op) (int64, bool, error) {
	m, err := s.touchMeta()
	if err != nil {
		return 0, false, err
	}
	return s.fencedTxn(ctx, what, guards, cmps, append(ops, m))
}

// fencedTxn commits ops if guards and cmps hold, without touching the meta
// key: for records outside the desired state. Its results are
// commitFenced's.
func (s *Store) fencedTxn(ctx context.Context, what string, guards []Guard, cmps []clientv3.Cmp, ops []clientv3.Op) (int64, bool, error) {
	fence := make([]clientv3.Cmp, len(guards))
	for i, g := range guards {
		if len(g.cmp.GetCompare().GetKey()) == 0 {
			return 0, false, fmt.Errorf("%s: a zero Guard guards nothing", what)
		}
		fence[i] = g.cmp
	}
	if len(ops) > s.maxOps || len(cmps)+len(fence) > s.maxOps {
		return 0, false, fmt.Errorf("%s: %d operations exceed the transaction limit of %d", what, len(ops), s.maxOps)
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	if len(fence) == 0 {
		resp, err := s.cli.Txn(rctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return 0, false, s.wrap(ctx, what, err)
		}
		return resp.Header.Revision, resp.Succeeded, nil
	}
	resp, err := s.cli.Txn(rctx).If(fence...).Then(clientv3.OpTxn(cmps, ops, nil)).Commit()
	if err != nil {
		return 0, false, s.wrap(ctx, what, err)
	}
	if !resp.Succeeded {
		return 0, false, &Error{Code: Conflict, Message: what, Err: ErrFenceLost}
	}
	return resp.Header.Revision, resp.Responses[0].GetResponseTxn().Succeeded, nil
}

// DeleteSite removes a site and frees its names. It returns the revision of
// the write. Errors: NotFound, Conflict, Busy, Unavailable (*Error).
func (s *Store) DeleteSite(ctx context.Context, domain string, pre Precondition) (int64, error) {
	for range maxRetries {
		v, err := s.readSiteView(ctx, domain, nil, "")
		if err != nil {
			return 0, err
		}
		if v.cur == nil {
			return 0, Errorf(NotFound, "site %q does not exist", domain)
		}
		if err := v.check(domain, pre); err != nil {
			return 0, err
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(s.keys.Site(domain)), "=", v.curRev),
			clientv3.Compare(clientv3.CreateRevision(s.keys.Pending()), "=", 0),
		}
		ops := []clientv3.Op{clientv3.OpDelete(s.keys.Site(domain))}
		for _, n := range v.cur.Claims() {
			ops = append(ops, clientv3.OpDelete(s.keys.Name(n)))
		}
		rev, ok, err := s.commit(ctx, "delete site", cmps, ops)
		if err != nil || ok {
			return rev, err
		}
	}
	return 0, Errorf(Conflict, "site %q is being changed concurrently: retry", domain)
}

// importedCertID is the ID of the site's imported certificate, or "".
func importedCertID(site Site) string {
	if site.ModeOf() == TLSImported {
		return site.TLS.Certificate
	}
	return ""
}

// changeSite applies change to the stored site (its deployment, history
// or previews) in one transaction guarded by the site's revision (and
// pre, guards and guardKeys still existing), claiming host in the name
// index when it is not empty and releasing the hosts of removed previews.
func (s *Store) changeSite(ctx context.Context, domain string, pre Precondition, host string, change func(*Site) error, guards []Guard, guardKeys ...string) (Site, error) {
	var names []string
	if host != "" {
		names = []string{host}
	}
	for range maxRetries {
		v, err := s.readSiteView(ctx, domain, names, "")
		if err != nil {
			return Site{}, err
		}
		if v.cur == nil {
			return Site{}, Errorf(NotFound, "site %q does not exist", domain)
		}
		if err := v.check(domain, pre); err != nil {
			return Site{}, err
		}
		site := *v.cur
		site.History, site.Previews = slices.Clone(v.cur.History), slices.Clone(v.cur.Previews)
		if err := change(&site); err != nil {
			return Site{}, err
		}
		slices.SortFunc(site.Previews, func(a, b Preview) int { return strings.Compare(a.Name, b.Name) })
		// A new preview must leave a valid site; removing previews from
		// a record that fails today's checks (written behind the API's
		// back) must still work.
		if host != "" {
			if _, err := NormalizeSite(site); err != nil {
				return Site{}, err
			}
		}
		if len(site.Previews) == 0 {
			site.Previews = nil
		}
		site.Revision = 0
		rev, ok, err := s.commitSite(ctx, site, v, guardKeys, guards...)
		if err != nil {
			return Site{}, err
		}
		if ok {
			site.Revision = rev
			return site, nil
		}
	}
	return Site{}, Errorf(Conflict, "site %q is being changed concurrently: retry", domain)
}
