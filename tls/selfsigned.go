package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// SelfSigned creates a self-signed certificate for domains (the first is
// the subject CN; all are DNS SANs) with a new ECDSA P-256 key, valid from
// an hour before now for validity after now. It returns the certificate
// and the PKCS#8 key as PEM.
func SelfSigned(domains []string, validity time.Duration, now time.Time) (chainPEM, keyPEM []byte, err error) {
	if err := checkSelfSignedArgs(domains, validity); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed: generating P-256 key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed: generating serial: %w", err)
	}
	names := make([]string, len(domains))
	for i, d := range domains {
		names[i] = strings.ToLower(d)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)), // never zero
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed: creating certificate for %s: %w", names[0], err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

func checkSelfSignedArgs(domains []string, validity time.Duration) error {
	if len(domains) == 0 {
		return fmt.Errorf("self-signed: no domains given")
	}
	if validity <= 0 {
		return fmt.Errorf("self-signed: validity %s is not positive", validity)
	}
	for _, d := range domains {
		if d == "" || strings.ContainsAny(d, " \t\r\n/:") {
			return fmt.Errorf("self-signed: %q is not a domain name", d)
		}
	}
	return nil
}
