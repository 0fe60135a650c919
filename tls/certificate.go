package tls

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Type is how a certificate was obtained.
type Type string

// The certificate types.
const (
	TypeSelfSigned Type = "selfsigned"
	TypeImported   Type = "imported"
	TypeACME       Type = "acme"
)

// Valid reports whether t is one of the known types.
func (t Type) Valid() bool {
	return t == TypeSelfSigned || t == TypeImported || t == TypeACME
}

// Certificate is the certificate record stored in the cluster state.
type Certificate struct {
	// ID is chosen by the user for imported certificates (see ValidateID)
	// and is "<type>-<domain>" for self-signed and ACME ones (see AutoID).
	ID   string `json:"id"`
	Type Type   `json:"type"`
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
	// KeySealed is the private key PEM sealed by a Sealer with ID as
	// context; the clear key is never stored.
	KeySealed string    `json:"keySealed"`
	CreatedAt time.Time `json:"createdAt"`
}

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
	return Certificate{
		ID:        id,
		Type:      typ,
		Domains:   p.Domains(),
		NotBefore: p.Leaf.NotBefore.UTC(),
		NotAfter:  p.Leaf.NotAfter.UTC(),
		Issuer:    issuerName(p.Leaf),
		Serial:    fmt.Sprintf("%x", p.Leaf.SerialNumber),
		ChainPEM:  string(p.ChainPEM),
		KeySealed: sealed,
		CreatedAt: now.UTC(),
	}, nil
}

// OpenKey returns the clear private key PEM of c.
func (c Certificate) OpenKey(s *Sealer) ([]byte, error) {
	key, err := s.Open(c.KeySealed, c.ID)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: opening key: %w", c.ID, err)
	}
	return key, nil
}

// AutoID returns the ID of a self-signed or ACME certificate for domain.
func AutoID(typ Type, domain string) string {
	return string(typ) + "-" + strings.ToLower(domain)
}

// ValidateID checks a user-chosen ID for an imported certificate:
// [a-z0-9][a-z0-9-]{0,62}, not starting with a prefix AutoID uses.
func ValidateID(id string) error {
	if id == "" || len(id) > 63 {
		return fmt.Errorf("certificate id %q: must be 1 to 63 characters", id)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0
		if !ok {
			return fmt.Errorf("certificate id %q: use lower-case letters, digits and '-' (not first)", id)
		}
	}
	for _, t := range []Type{TypeSelfSigned, TypeACME} {
		if strings.HasPrefix(id, string(t)+"-") {
			return fmt.Errorf("certificate id %q: prefix %q is reserved for %s certificates", id, string(t)+"-", t)
		}
	}
	return nil
}

// NeedsRenewal reports whether c is within window of its expiry at now
// (NotAfter - window <= now).
func NeedsRenewal(c Certificate, now time.Time, window time.Duration) bool {
	return !c.NotAfter.Add(-window).After(now)
}

func normalizeDomains(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	slices.Sort(out)
	return slices.Compact(out)
}
