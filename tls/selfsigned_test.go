package tls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"slices"
	"testing"
	"time"
)

func TestSelfSigned(t *testing.T) {
	domains := []string{"Example.com", "www.example.com", "*.static.example.com"}
	chainPEM, keyPEM, err := SelfSigned(domains, 90*24*time.Hour, testNow)
	if err != nil {
		t.Fatalf("SelfSigned: %v", err)
	}
	p, err := ValidateImport(chainPEM, keyPEM, []string{"example.com", "www.example.com", "a.static.example.com"}, testNow)
	if err != nil {
		t.Fatalf("ValidateImport(self-signed): %v", err)
	}
	leaf := p.Leaf
	if got, want := leaf.Subject.CommonName, "example.com"; got != want {
		t.Errorf("CN = %q, want %q", got, want)
	}
	if got, want := p.Domains(), []string{"*.static.example.com", "example.com", "www.example.com"}; !slices.Equal(got, want) {
		t.Errorf("Domains = %v, want %v", got, want)
	}
	if got, want := leaf.NotBefore, testNow.Add(-time.Hour); !got.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", got, want)
	}
	if got, want := leaf.NotAfter, testNow.Add(90*24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	if k, ok := p.Key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", p.Key)
	}
	if got, want := leaf.SerialNumber.BitLen(), 100; got < want {
		t.Errorf("serial has %d bits, want about 128", got)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want DigitalSignature", leaf.KeyUsage)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want ServerAuth", leaf.ExtKeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, name := range []string{"example.com", "www.example.com", "x.static.example.com"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: testNow}); err != nil {
			t.Errorf("Verify(%s): %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.com", Roots: roots, CurrentTime: testNow}); err == nil {
		t.Error("Verify(other.com) succeeded")
	}
}

func TestSelfSignedErrors(t *testing.T) {
	tests := []struct {
		name     string
		domains  []string
		validity time.Duration
	}{
		{"no domains", nil, time.Hour},
		{"empty domain", []string{""}, time.Hour},
		{"space", []string{"a b.com"}, time.Hour},
		{"zero validity", []string{"a.com"}, 0},
		{"negative validity", []string{"a.com"}, -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, k, err := SelfSigned(tt.domains, tt.validity, testNow)
			if err == nil || c != nil || k != nil {
				t.Fatalf("SelfSigned = %d, %d bytes, %v; want error", len(c), len(k), err)
			}
		})
	}
}

func TestSelfSignedSerialsDiffer(t *testing.T) {
	a, _, err := SelfSigned([]string{"a.com"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := SelfSigned([]string{"a.com"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := parseChain(a)
	pb, _ := parseChain(b)
	if pa[0].SerialNumber.Cmp(pb[0].SerialNumber) == 0 {
		t.Error("two self-signed certificates share a serial")
	}
}
