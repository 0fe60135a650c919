package state

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Certs is the prefix of the certificate records; Cert the key of one.
func (k Keys) Certs() string         { return k.Prefix + "/state/certs/" }
func (k Keys) Cert(id string) string { return k.Certs() + id }

// DHParams is the key of the leader's Diffie-Hellman parameters.
func (k Keys) DHParams() string { return k.Prefix + "/state/dhparams" }

// GetDHParams reads the fleet's DH parameters; nil when there are none.
func (s *Store) GetDHParams(ctx context.Context) (*DHParams, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.DHParams())
	if err != nil {
		return nil, s.wrap(ctx, "read dh parameters", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return decodeDHParams(resp.Kvs[0])
}

func decodeDHParams(kv *mvccpb.KeyValue) (*DHParams, error) {
	var p DHParams
	if err := json.Unmarshal(kv.Value, &p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	return &p, nil
}

// PutDHParams stores new Diffie-Hellman parameters; guard adds compares
// (the leader's fence) that must hold, or the result is a Conflict *Error.
func (s *Store) PutDHParams(ctx context.Context, p DHParams, guard ...Guard) error {
	val, err := marshal(p)
	if err != nil {
		return err
	}
	_, _, err = s.commitFenced(ctx, "write dh parameters", guard, nil, []clientv3.Op{clientv3.OpPut(s.keys.DHParams(), val)})
	return err
}

// PutCertificate stores a certificate record; with pre.IfNoneMatch an
// existing ID is an Exists *Error, with pre.IfMatch a record at another
// revision a Conflict *Error. The record must carry a sealed key. An
// imported certificate that replaces one must still cover the sites that
// serve it (Invalid). guard is a leader's fence (see commitFenced).
func (s *Store) PutCertificate(ctx context.Context, c Certificate, pre Precondition, guard ...Guard) (Certificate, error) {
	if c.ID == "" || strings.ContainsAny(c.ID, "/ \t\n") || !c.Type.Valid() || c.KeySealed == "" || c.ChainPEM == "" {
		return Certificate{}, Errorf(Invalid, "certificate record %q is incomplete or malformed", c.ID)
	}
	c.Revision = 0
	val, err := marshal(c)
	if err != nil {
		return Certificate{}, err
	}
	key := s.keys.Cert(c.ID)
	for range maxRetries {
		var curRev int64
		var cmps []clientv3.Cmp
		if c.Type == CertImported {
			// A replacement must still cover the sites that serve it.
			scan, err := s.scanSites(ctx, key)
			if err != nil {
				return Certificate{}, err
			}
			for _, site := range scan.sites {
				if !slices.Contains(site.CertIDs(), c.ID) {
					continue
				}
				if missing := c.Uncovered(site.Names()); len(missing) > 0 {
					return Certificate{}, Errorf(Invalid, "certificate %q is served by site %s, and this one does not cover %s", c.ID, site.Domain, strings.Join(missing, ", "))
				}
			}
			if scan.obj != nil {
				curRev = scan.obj.ModRevision
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.Meta()), "=", scan.metaRev),
				clientv3.Compare(clientv3.ModRevision(key), "=", curRev))
		} else {
			if pre.IfNoneMatch {
				cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
			}
			if pre.IfMatch != 0 {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", pre.IfMatch))
			}
		}
		if err := pre.checkCert(c.ID, curRev, c.Type == CertImported); err != nil {
			return Certificate{}, err
		}
		rev, ok, err := s.commitFenced(ctx, "write certificate", guard, cmps, []clientv3.Op{clientv3.OpPut(key, val)})
		switch {
		case err != nil:
			return Certificate{}, err
		case ok:
			c.Revision = rev
			return c, nil
		case c.Type == CertImported:
			continue // the state changed between the read and the write: read again
		}
		if err := pre.checkCert(c.ID, -1, true); err != nil {
			return Certificate{}, err
		}
		return Certificate{}, Errorf(Conflict, "certificate %q changed meanwhile", c.ID)
	}
	return Certificate{}, Errorf(Conflict, "certificate %q is being changed concurrently: retry", c.ID)
}

// checkCert checks pre against a certificate at revision curRev (0: it
// does not exist; -1: the write found it otherwise than pre wants).
// Unless known, nothing is checked.
func (pre Precondition) checkCert(id string, curRev int64, known bool) error {
	switch {
	case !known:
		return nil
	case pre.IfNoneMatch && curRev != 0:
		return Errorf(Exists, "certificate %q exists already", id)
	case pre.IfMatch != 0 && curRev != pre.IfMatch:
		return Errorf(Conflict, "certificate %q changed since revision %d", id, pre.IfMatch)
	}
	return nil
}

// siteScan is what a write that depends on every site reads at one
// revision: one object, all sites, and the meta key's revision to guard
// the write with.
type siteScan struct {
	obj     *mvccpb.KeyValue // nil when the object does not exist
	sites   []Site
	metaRev int64
}

func (s *Store) scanSites(ctx context.Context, key string) (siteScan, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).Then(
		clientv3.OpGet(key),
		clientv3.OpGet(s.keys.Sites(), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.Meta(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return siteScan{}, s.wrap(ctx, "read sites", err)
	}
	var scan siteScan
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		scan.obj = kvs[0]
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		site, err := decodeSite(kv)
		if err != nil {
			return siteScan{}, err
		}
		scan.sites = append(scan.sites, site)
	}
	if m := resp.Responses[2].GetResponseRange().Kvs; len(m) > 0 {
		scan.metaRev = m[0].ModRevision
	}
	return scan, nil
}

// deleteGuarded deletes key in a transaction guarded by the scan it read
// (no state change since) and by guard.
func (s *Store) deleteGuarded(ctx context.Context, what, key string, scan siteScan, guard []Guard) (bool, error) {
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(s.keys.Meta()), "=", scan.metaRev),
		clientv3.Compare(clientv3.ModRevision(key), "=", scan.obj.ModRevision),
	}
	_, ok, err := s.commitFenced(ctx, what, guard, cmps, []clientv3.Op{clientv3.OpDelete(key)})
	return ok, err
}

// GetCertificate reads one certificate record; a missing one is a
// NotFound *Error.
func (s *Store) GetCertificate(ctx context.Context, id string) (Certificate, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Cert(id))
	if err != nil {
		return Certificate{}, s.wrap(ctx, "read certificate", err)
	}
	if len(resp.Kvs) == 0 {
		return Certificate{}, Errorf(NotFound, "certificate %q does not exist", id)
	}
	return decodeCert(resp.Kvs[0])
}

func decodeCert(kv *mvccpb.KeyValue) (Certificate, error) {
	var c Certificate
	if err := json.Unmarshal(kv.Value, &c); err != nil {
		return Certificate{}, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	c.Revision = kv.ModRevision
	return c, nil
}

// ListCertificates returns every certificate record, sorted by ID.
func (s *Store) ListCertificates(ctx context.Context) ([]Certificate, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Certs(), clientv3.WithPrefix())
	if err != nil {
		return nil, s.wrap(ctx, "list certificates", err)
	}
	out := make([]Certificate, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		c, err := decodeCert(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// DeleteCertificate removes a certificate record, and with it the sealed
// key, from etcd. A certificate that a site serves is an InUse *Error that
// names the sites; a missing one is a NotFound *Error. guard is a leader's
// fence (see commitFenced).
func (s *Store) DeleteCertificate(ctx context.Context, id string, guard ...Guard) error {
	for range maxRetries {
		scan, err := s.scanSites(ctx, s.keys.Cert(id))
		if err != nil {
			return err
		}
		if scan.obj == nil {
			return Errorf(NotFound, "certificate %q does not exist", id)
		}
		var users []string
		for _, site := range scan.sites {
			if slices.Contains(site.CertIDs(), id) {
				users = append(users, site.Domain)
			}
		}
		if len(users) > 0 {
			return Errorf(InUse, "certificate %q is used by %s: change their tls setting first", id, strings.Join(users, ", "))
		}
		// No site may have started to use it since the read.
		if ok, err := s.deleteGuarded(ctx, "delete certificate", s.keys.Cert(id), scan, guard); err != nil || ok {
			return err
		}
	}
	return Errorf(Conflict, "certificate %q is being changed concurrently: retry", id)
}
