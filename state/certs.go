package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

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

// PutCertificate stores a certificate record; with pre.IfNoneMatch an
// existing ID is an Exists *Error. The record must carry a sealed key.
func (s *Store) PutCertificate(ctx context.Context, c Certificate, pre Precondition) (Certificate, error) {
	if c.ID == "" || strings.ContainsAny(c.ID, "/ \t\n") || !c.Type.Valid() || c.KeySealed == "" || c.ChainPEM == "" {
		return Certificate{}, Errorf(Invalid, "certificate record %q is incomplete or malformed", c.ID)
	}
	c.Revision = 0
	val, err := marshal(c)
	if err != nil {
		return Certificate{}, err
	}
	var cmps []clientv3.Cmp
	if pre.IfNoneMatch {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.keys.Cert(c.ID)), "=", 0))
	}
	rev, ok, err := s.commit(ctx, "write certificate", cmps, []clientv3.Op{clientv3.OpPut(s.keys.Cert(c.ID), val)})
	if err != nil {
		return Certificate{}, err
	}
	if !ok {
		return Certificate{}, Errorf(Exists, "certificate %q exists already", c.ID)
	}
	c.Revision = rev
	return c, nil
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
	var c Certificate
	if err := json.Unmarshal(resp.Kvs[0].Value, &c); err != nil {
		return Certificate{}, fmt.Errorf("decode certificate %q: %w", id, err)
	}
	c.Revision = resp.Kvs[0].ModRevision
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
		var c Certificate
		if err := json.Unmarshal(kv.Value, &c); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		c.Revision = kv.ModRevision
		out = append(out, c)
	}
	return out, nil
}

// DeleteCertificate removes a certificate record, and with it the sealed
// key, from etcd; a missing one is a NotFound *Error.
func (s *Store) DeleteCertificate(ctx context.Context, id string) error {
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.keys.Cert(id)), ">", 0)}
	_, ok, err := s.commit(ctx, "delete certificate", cmps, []clientv3.Op{clientv3.OpDelete(s.keys.Cert(id))})
	if err == nil && !ok {
		err = Errorf(NotFound, "certificate %q does not exist", id)
	}
	return err
}
