package tls

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// Import limits.
const (
	MaxChainBytes = 64 << 10 // largest chain PEM accepted
	MaxKeyBytes   = 16 << 10 // largest key PEM accepted
	MaxChainCerts = 10       // most certificates in a chain
)

// The Check values of an ImportError.
const (
	CheckParseChain  = "parse-chain"
	CheckParseKey    = "parse-key"
	CheckKeyType     = "key-type"
	CheckKeyMismatch = "key-mismatch"
	CheckChainOrder  = "chain-order"
	CheckNames       = "names"
	CheckExpired     = "expired"
	CheckNotYetValid = "not-yet-valid"
)

// ImportError is a user-facing reason an imported certificate is refused.
type ImportError struct {
	Check string // which check failed, one of the Check* constants
	Msg   string // what is wrong, for the user
}

// Error implements error.
func (e *ImportError) Error() string {
	return "certificate import (" + e.Check + "): " + e.Msg
}

func importErr(check, format string, args ...any) *ImportError {
	return &ImportError{Check: check, Msg: fmt.Sprintf(format, args...)}
}

// Parsed is a validated certificate chain and its private key.
type Parsed struct {
	Leaf     *x509.Certificate   // the site certificate
	Chain    []*x509.Certificate // the leaf first, then intermediates
	Key      crypto.Signer       // *ecdsa.PrivateKey or *rsa.PrivateKey
	ChainPEM []byte              // the chain re-encoded: CERTIFICATE blocks only
	KeyPEM   []byte              // the key re-encoded as PKCS#8 "PRIVATE KEY"
}

// Domains returns the DNS names the leaf covers, lower-case and sorted.
func (p Parsed) Domains() []string {
	if p.Leaf == nil {
		return nil
	}
	return normalizeDomains(p.Leaf.DNSNames)
}

// ValidateImport parses and checks a certificate chain and private key for
// a site served under names at time now. Failures are *ImportError.
func ValidateImport(chainPEM, keyPEM []byte, names []string, now time.Time) (Parsed, error) {
	chain, err := parseChain(chainPEM)
	if err != nil {
		return Parsed{}, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return Parsed{}, err
	}
	p := Parsed{Leaf: chain[0], Chain: chain, Key: key}
	for _, check := range []func(Parsed) error{
		checkKeyType,
		checkKeyMatch,
		checkChainOrder,
		func(p Parsed) error { return checkValidity(p.Leaf, now) },
		func(p Parsed) error { return checkNames(p.Leaf, names) },
	} {
		if err := check(p); err != nil {
			return Parsed{}, err
		}
	}
	if p.KeyPEM, err = encodeKey(key); err != nil {
		return Parsed{}, err
	}
	p.ChainPEM = encodeChain(chain)
	return p, nil
}

func checkValidity(leaf *x509.Certificate, now time.Time) error {
	if now.Before(leaf.NotBefore) {
		return importErr(CheckNotYetValid, "certificate %s is not valid before %s",
			describe(leaf), leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return importErr(CheckExpired, "certificate %s expired on %s",
			describe(leaf), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkNames(leaf *x509.Certificate, names []string) error {
	var missing []string
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return importErr(CheckNames, "certificate %s does not cover %s (it covers: %s)",
			describe(leaf), strings.Join(missing, ", "), strings.Join(leaf.DNSNames, ", "))
	}
	return nil
}

func checkChainOrder(p Parsed) error {
	for i := 0; i+1 < len(p.Chain); i++ {
		child, parent := p.Chain[i], p.Chain[i+1]
		if child.CheckSignatureFrom(parent) == nil {
			continue
		}
		hint := "list the site certificate first, then each issuer in order"
		if parent.CheckSignatureFrom(child) == nil {
			hint = "the chain looks reversed; " + hint
		}
		return importErr(CheckChainOrder, "certificate %d (%s) is not issued by certificate %d (%s): %s",
			i+1, describe(child), i+2, describe(parent), hint)
	}
	return nil
}

func describe(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return "CN=" + c.Subject.CommonName
	}
	if len(c.DNSNames) > 0 {
		return "for " + c.DNSNames[0]
	}
	return "serial " + fmt.Sprintf("%x", c.SerialNumber)
}

func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return c.Issuer.CommonName
	}
	if len(c.Issuer.Organization) > 0 {
		return c.Issuer.Organization[0]
	}
	return ""
}
