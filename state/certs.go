package state

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// CertType is how a certificate was obtained.
type CertType string

// The certificate types.
const (
	CertSelfSigned CertType = "selfsigned"
	CertImported   CertType = "imported"
	CertACME       CertType = "acme"
)

// Valid reports whether t is one of the known types.
func (t CertType) Valid() bool {
	return t == CertSelfSigned || t == CertImported || t == CertACME
}

// Certificate is a certificate record in the state. Its private key is
// only ever stored sealed with the cluster key (package tls).
type Certificate struct {
	// ID is chosen by the user for imported certificates and is
	// "<type>-<domain>" for self-signed and ACME ones.
	ID   string   `json:"id"`
	Type CertType `json:"type"`
	// Domains are the names it covers: the leaf's DNS SANs, lower-case, sorted.
	Domains   []string  `json:"domains"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	// Issuer is the issuer's common name, or its organisation.
	Issuer string `json:"issuer"`
	// Serial is the leaf's serial number in hex.
	Serial string `json:"serial"`
	// ChainPEM is the leaf first, then intermediates. It is public.
	ChainPEM string `json:"chainPem"`
	// KeySealed is the private key PEM sealed with the cluster key, with
	// ID as context; the clear key is never stored.
	KeySealed string    `json:"keySealed"`
	CreatedAt time.Time `json:"createdAt"`
	// Revision is the etcd revision of the record (output only).
	Revision int64 `json:"revision,omitempty"`
}

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
func (s *Store) PutDHParams(ctx context.Context, p DHParams, guard ...clientv3.Cmp) error {
	val, err := marshal(p)
	if err != nil {
		return err
	}
	_, ok, err := s.commit(ctx, "write dh parameters", guard, []clientv3.Op{clientv3.OpPut(s.keys.DHParams(), val)})
	if err == nil && !ok {
		err = Errorf(Conflict, "dh parameters: the write guard failed")
	}
	return err
}

// PutCertificate stores a certificate record; with pre.IfNoneMatch an
// existing ID is an Exists *Error, with pre.IfMatch a record at another
// revision a Conflict *Error. The record must carry a sealed key. guard adds
// compares (a leader's fence); when one fails the result is a Conflict
// *Error.
func (s *Store) PutCertificate(ctx context.Context, c Certificate, pre Precondition, guard ...clientv3.Cmp) (Certificate, error) {
	if c.ID == "" || strings.ContainsAny(c.ID, "/ \t\n") || !c.Type.Valid() || c.KeySealed == "" || c.ChainPEM == "" {
		return Certificate{}, Errorf(Invalid, "certificate record %q is incomplete or malformed", c.ID)
	}
	c.Revision = 0
	val, err := marshal(c)
	if err != nil {
		return Certificate{}, err
	}
	for range maxRetries {
		cmps := slices.Clone(guard)
		if pre.IfNoneMatch {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.keys.Cert(c.ID)), "=", 0))
		}
		if pre.IfMatch != 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.Cert(c.ID)), "=", pre.IfMatch))
		}
		if c.Type == CertImported {
			// A replacement must still cover the sites that serve it.
			users, metaRev, _, err := s.certUsers(ctx, c.ID)
			if err != nil {
				return Certificate{}, err
			}
			for _, site := range users {
				if missing := c.Uncovered(site.Names()); len(missing) > 0 {
					return Certificate{}, Errorf(Invalid, "certificate %q is served by site %s, and this one does not cover %s", c.ID, site.Domain, strings.Join(missing, ", "))
				}
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.Meta()), "=", metaRev))
		}
		rev, ok, err := s.commit(ctx, "write certificate", cmps, []clientv3.Op{clientv3.OpPut(s.keys.Cert(c.ID), val)})
		if err != nil {
			return Certificate{}, err
		}
		switch {
		case ok:
			c.Revision = rev
			return c, nil
		case c.Type == CertImported && len(guard) == 0 && !pre.IfNoneMatch && pre.IfMatch == 0:
			continue // the state changed between the read and the write
		case pre.IfNoneMatch && len(guard) == 0:
			return Certificate{}, Errorf(Exists, "certificate %q exists already", c.ID)
		default:
			return Certificate{}, Errorf(Conflict, "certificate %q: it changed meanwhile or the write guard failed", c.ID)
		}
	}
	return Certificate{}, Errorf(Conflict, "certificate %q is being changed concurrently: retry", c.ID)
}

// certUsers reads, at one revision, the sites that serve certificate id,
// the meta key's revision and whether the certificate exists.
func (s *Store) certUsers(ctx context.Context, id string) ([]Site, int64, bool, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).Then(
		clientv3.OpGet(s.keys.Cert(id), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.keys.Sites(), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.Meta(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, 0, false, s.wrap(ctx, "read certificate users", err)
	}
	var users []Site
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		site, err := decodeSite(kv)
		if err != nil {
			return nil, 0, false, err
		}
		if slices.Contains(site.CertIDs(), id) {
			users = append(users, site)
		}
	}
	var metaRev int64
	if m := resp.Responses[2].GetResponseRange().Kvs; len(m) > 0 {
		metaRev = m[0].ModRevision
	}
	return users, metaRev, len(resp.Responses[0].GetResponseRange().Kvs) > 0, nil
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
// names the sites; a missing one is a NotFound *Error. guard adds compares
// (a leader's fence) that must hold too.
func (s *Store) DeleteCertificate(ctx context.Context, id string, guard ...clientv3.Cmp) error {
	for range maxRetries {
		users, metaRev, exists, err := s.certUsers(ctx, id)
		if err != nil {
			return err
		}
		if !exists {
			return Errorf(NotFound, "certificate %q does not exist", id)
		}
		if len(users) > 0 {
			domains := make([]string, len(users))
			for i, u := range users {
				domains[i] = u.Domain
			}
			return Errorf(InUse, "certificate %q is used by %s: change their tls setting first", id, strings.Join(domains, ", "))
		}
		// No site may have started to use it since the read.
		cmps := append([]clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(s.keys.Meta()), "=", metaRev),
			clientv3.Compare(clientv3.CreateRevision(s.keys.Cert(id)), ">", 0),
		}, guard...)
		_, ok, err := s.commit(ctx, "delete certificate", cmps, []clientv3.Op{clientv3.OpDelete(s.keys.Cert(id))})
		if err != nil || ok {
			return err
		}
		if len(guard) > 0 {
			return Errorf(Conflict, "certificate %q: the state changed or the write guard failed", id)
		}
	}
	return Errorf(Conflict, "certificate %q is being changed concurrently: retry", id)
}
