package tls

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// Type is how a certificate was obtained (the state's certificate type).
type Type = state.CertType

// The certificate types.
const (
	TypeSelfSigned = state.CertSelfSigned
	TypeImported   = state.CertImported
	TypeACME       = state.CertACME
)

// Certificate is the certificate record stored in the cluster state.
type Certificate = state.Certificate

// NewCertificate builds the record for a validated certificate, sealing its
// private key with s under id.
func NewCertificate(id string, typ Type, p Parsed, s *Sealer, now time.Time) (Certificate, error) {
	if !typ.Valid() {
		return Certificate{}, fmt.Errorf("certificate %q: unknown type %q", id, typ)
	}
	if id == "" {
		return Certificate{}, fmt.Errorf("certificate: empty id")
	}
	if p.Leaf == nil || s == nil {
		return Certificate{}, fmt.Errorf("certificate %q: missing parsed certificate or sealer", id)
	}
	sealed, err := s.Seal(p.KeyPEM, id)
	if err != nil {
		return Certificate{}, fmt.Errorf("certificate %q: sealing key: %w", id, err)
	}
	c := leafFields(p)
	c.ID, c.Type, c.KeySealed, c.CreatedAt = id, typ, sealed, now.UTC()
	c.ChainPEM = string(p.ChainPEM)
	return c, nil
}

// leafFields are the fields of a record that describe its leaf.
func leafFields(p Parsed) Certificate {
	return Certificate{
		Domains:   p.Domains(),
		NotBefore: p.Leaf.NotBefore.UTC(),
		NotAfter:  p.Leaf.NotAfter.UTC(),
		Issuer:    issuerName(p.Leaf),
		Serial:    fmt.Sprintf("%x", p.Leaf.SerialNumber),
	}
}

// OpenKey returns the clear private key PEM of c.
func OpenKey(c Certificate, s *Sealer) ([]byte, error) {
	key, err := s.Open(c.KeySealed, c.ID)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: opening key: %w", c.ID, err)
	}
	return key, nil
}

// AutoID returns the ID of a self-signed or ACME certificate for domain.
func AutoID(typ Type, domain string) string {
	return state.AutoCertID(typ, strings.ToLower(domain))
}

// ValidateID checks a user-chosen ID for an imported certificate:
// [a-z0-9][a-z0-9-]{0,62}, not starting with a prefix AutoID uses.
func ValidateID(id string) error {
	return state.ValidateCertID(id)
}

// NeedsRenewal reports whether c is within window of its expiry at now
// (NotAfter - window <= now).
func NeedsRenewal(c Certificate, now time.Time, window time.Duration) bool {
	return renewalDue(c.NotAfter, now, window)
}

func renewalDue(notAfter, now time.Time, window time.Duration) bool {
	return !notAfter.Add(-window).After(now)
}

func normalizeDomains(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// CheckRecord checks a certificate record read from outside (a state
// import): its key must open with s (the same cluster key), and the chain
// and key must parse, match and be in order, and the record's names must be
// the leaf's. Expiry is not checked: an expired certificate in a backup is
// restored as it was, and shows as expired.
func CheckRecord(c Certificate, s *Sealer) error {
	keyPEM, err := OpenKey(c, s)
	if err != nil {
		return err
	}
	chain, err := parseChain([]byte(c.ChainPEM))
	if err != nil {
		return err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return err
	}
	p := Parsed{Leaf: chain[0], Chain: chain, Key: key}
	for _, check := range []func(Parsed) error{checkKeyType, checkKeyMatch, checkChainOrder} {
		if err := check(p); err != nil {
			return err
		}
	}
	// The record's own description of the leaf is what renewal and the
	// sites' coverage checks trust: it must be the leaf's.
	want := leafFields(p)
	if !slices.Equal(c.Domains, want.Domains) || !c.NotBefore.Equal(want.NotBefore) || !c.NotAfter.Equal(want.NotAfter) ||
		c.Issuer != want.Issuer || c.Serial != want.Serial {
		return fmt.Errorf("certificate %q: the record says %v, %s..%s, issuer %q, serial %s but the certificate is %v, %s..%s, issuer %q, serial %s",
			c.ID, c.Domains, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), c.Issuer, c.Serial,
			want.Domains, want.NotBefore.Format(time.RFC3339), want.NotAfter.Format(time.RFC3339), want.Issuer, want.Serial)
	}
	return nil
}

// Staplable reports whether nginx can staple OCSP for a chain: the leaf
// names an OCSP responder and the chain holds its issuer.
func Staplable(chainPEM []byte) bool {
	chain, err := parseChain(chainPEM)
	return err == nil && len(chain) >= 2 && len(chain[0].OCSPServer) > 0 && chain[0].CheckSignatureFrom(chain[1]) == nil
}
