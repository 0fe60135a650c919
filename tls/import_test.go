package tls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestValidateImportGood(t *testing.T) {
	pki := newPKI(t)
	leaf := pki.leaf(t, leafTemplate("www.Example.com", "example.com"), nil)
	wild := pki.leaf(t, leafTemplate("*.example.com"), nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("rsa key: %v", err)
	}
	rsaLeaf := pki.leaf(t, leafTemplate("example.com"), rsaKey)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatalf("p384 key: %v", err)
	}
	p384Leaf := pki.leaf(t, leafTemplate("example.com"), p384)
	sec1, err := x509.MarshalECPrivateKey(leaf.key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatalf("sec1: %v", err)
	}
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	tests := []struct {
		name  string
		chain []byte
		key   []byte
		names []string
		want  []string // Domains
	}{
		{"leaf and intermediate", pemCerts(leaf, pki.inter), pemPKCS8Key(t, leaf.key),
			[]string{"example.com", "www.example.com"}, []string{"example.com", "www.example.com"}},
		{"full chain with root", pemCerts(leaf, pki.inter, pki.root), pemPKCS8Key(t, leaf.key),
			[]string{"example.com"}, []string{"example.com", "www.example.com"}},
		{"single leaf", pemCerts(leaf), pemPKCS8Key(t, leaf.key), nil, []string{"example.com", "www.example.com"}},
		{"text around blocks", append([]byte("subject=CN = www.example.com\n"), pemCerts(leaf, pki.inter)...),
			pemPKCS8Key(t, leaf.key), []string{"www.example.com"}, []string{"example.com", "www.example.com"}},
		{"SEC1 key with EC PARAMETERS", pemCerts(leaf), append(ecParams, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...),
			[]string{"example.com"}, []string{"example.com", "www.example.com"}},
		{"wildcard", pemCerts(wild, pki.inter), pemPKCS8Key(t, wild.key),
			[]string{"a.example.com", "B.example.com."}, []string{"*.example.com"}},
		{"RSA 2048 PKCS#1", pemCerts(rsaLeaf, pki.inter),
			pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}),
			[]string{"example.com"}, []string{"example.com"}},
		{"ECDSA P-384", pemCerts(p384Leaf), pemPKCS8Key(t, p384), []string{"example.com"}, []string{"example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ValidateImport(tt.chain, tt.key, tt.names, testNow)
			if err != nil {
				t.Fatalf("ValidateImport: %v", err)
			}
			if got := p.Domains(); !slices.Equal(got, tt.want) {
				t.Errorf("Domains = %v, want %v", got, tt.want)
			}
			if got, want := len(p.Chain), bytes.Count(tt.chain, []byte("BEGIN CERTIFICATE")); got != want {
				t.Errorf("len(Chain) = %d, want %d", got, want)
			}
			if p.Leaf != p.Chain[0] {
				t.Error("Leaf is not Chain[0]")
			}
			// The normalized PEMs must validate again, unchanged.
			again, err := ValidateImport(p.ChainPEM, p.KeyPEM, tt.names, testNow)
			if err != nil {
				t.Fatalf("ValidateImport(normalized): %v", err)
			}
			if !bytes.Equal(again.ChainPEM, p.ChainPEM) || !bytes.Equal(again.KeyPEM, p.KeyPEM) {
				t.Error("normalizing is not idempotent")
			}
			if bytes.Contains(p.ChainPEM, []byte("subject=")) {
				t.Error("normalized chain kept text outside PEM blocks")
			}
		})
	}
}

func TestValidateImportFailures(t *testing.T) {
	pki := newPKI(t)
	leaf := pki.leaf(t, leafTemplate("example.com", "www.example.com"), nil)
	goodChain, goodKey := pemCerts(leaf, pki.inter), pemPKCS8Key(t, leaf.key)

	expired := leafTemplate("example.com")
	expired.NotBefore, expired.NotAfter = testNow.Add(-90*24*time.Hour), testNow.Add(-time.Minute)
	expiredLeaf := pki.leaf(t, expired, nil)
	future := leafTemplate("example.com")
	future.NotBefore = testNow.Add(time.Hour)
	futureLeaf := pki.leaf(t, future, nil)

	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("ed25519: %v", err)
	}
	edLeaf := pki.leaf(t, leafTemplate("example.com"), edKey)
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatalf("rsa 1024: %v", err)
	}
	rsaLeaf := pki.leaf(t, leafTemplate("example.com"), rsaSmall)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatalf("p224: %v", err)
	}
	p224Leaf := pki.leaf(t, leafTemplate("example.com"), p224)
	otherPKI := newPKI(t)

	truncated := append(pemCerts(leaf), pemCerts(pki.inter)[:200]...)
	tests := []struct {
		name  string
		chain []byte
		key   []byte
		names []string
		want  string
	}{
		{"garbage chain", []byte("not a certificate"), goodKey, nil, CheckParseChain},
		{"empty chain", nil, goodKey, nil, CheckParseChain},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), goodKey, nil, CheckParseChain},
		{"key block in chain", append(bytes.Clone(goodChain), goodKey...), goodKey, nil, CheckParseChain},
		{"truncated block", truncated, goodKey, nil, CheckParseChain},
		{"chain too large", append(bytes.Clone(goodChain), bytes.Repeat([]byte(" "), MaxChainBytes)...), goodKey, nil, CheckParseChain},
		{"too many certificates", bytes.Repeat(pemCerts(pki.inter), MaxChainCerts+1), goodKey, nil, CheckParseChain},
		{"garbage key", goodChain, []byte("garbage"), nil, CheckParseKey},
		{"certificate as key", goodChain, goodChain[:bytes.Index(goodChain[1:], []byte("-----BEGIN"))+1], nil, CheckParseKey},
		{"two keys", goodChain, append(bytes.Clone(goodKey), goodKey...), nil, CheckParseKey},
		{"encrypted key", goodChain, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), nil, CheckParseKey},
		{"bad key DER", goodChain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), nil, CheckParseKey},
		{"key too large", goodChain, append(bytes.Clone(goodKey), bytes.Repeat([]byte(" "), MaxKeyBytes)...), nil, CheckParseKey},
		{"mismatched key", goodChain, pemPKCS8Key(t, newECKey(t)), nil, CheckKeyMismatch},
		{"key of the intermediate", goodChain, pemPKCS8Key(t, pki.inter.key), nil, CheckKeyMismatch},
		{"reversed chain", pemCerts(pki.inter, leaf), pemPKCS8Key(t, pki.inter.key), nil, CheckChainOrder},
		{"reversed with root", pemCerts(leaf, pki.root, pki.inter), goodKey, nil, CheckChainOrder},
		{"foreign intermediate", pemCerts(leaf, otherPKI.inter), goodKey, nil, CheckChainOrder},
		{"name not covered", goodChain, goodKey, []string{"example.com", "other.example.com"}, CheckNames},
		{"wildcard needs label", pemCerts(pki.leaf(t, leafTemplate("*.example.com"), leaf.key)), goodKey, []string{"example.com"}, CheckNames},
		{"expired", pemCerts(expiredLeaf, pki.inter), pemPKCS8Key(t, expiredLeaf.key), []string{"example.com"}, CheckExpired},
		{"not yet valid", pemCerts(futureLeaf, pki.inter), pemPKCS8Key(t, futureLeaf.key), []string{"example.com"}, CheckNotYetValid},
		{"Ed25519", pemCerts(edLeaf, pki.inter), pemPKCS8Key(t, edKey), []string{"example.com"}, CheckKeyType},
		{"RSA 1024", pemCerts(rsaLeaf, pki.inter), pemPKCS8Key(t, rsaSmall), []string{"example.com"}, CheckKeyType},
		{"ECDSA P-224", pemCerts(p224Leaf, pki.inter), pemPKCS8Key(t, p224), []string{"example.com"}, CheckKeyType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ValidateImport(tt.chain, tt.key, tt.names, testNow)
			var ie *ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("ValidateImport error = %v, want *ImportError", err)
			}
			if got, want := ie.Check, tt.want; got != want {
				t.Fatalf("Check = %q, want %q (msg: %s)", got, want, ie.Msg)
			}
			t.Log(ie.Error())
			if ie.Msg == "" {
				t.Error("empty Msg")
			}
		})
	}
}

func TestValidateImportKeyTypeBeforeMismatch(t *testing.T) {
	// An Ed25519 key is refused as such even when it matches nothing.
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("ed25519: %v", err)
	}
	pki := newPKI(t)
	leaf := pki.leaf(t, leafTemplate("example.com"), nil)
	_, err = ValidateImport(pemCerts(leaf), pemPKCS8Key(t, crypto.Signer(edKey)), nil, testNow)
	var ie *ImportError
	if !errors.As(err, &ie) || ie.Check != CheckKeyType {
		t.Fatalf("error = %v, want key-type", err)
	}
}
