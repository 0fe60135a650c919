package tls

import (
	"strings"
	"testing"
	"time"
)

// TestCheckRecord: a record from a state import is accepted only when its
// key opens with this cluster's key under its own ID and the record says
// what its certificate is.
func TestCheckRecord(t *testing.T) {
	s := newTestSealer(t)
	record := func(t *testing.T, id string, names ...string) Certificate {
		t.Helper()
		chain, key, err := SelfSigned(names, time.Hour, testNow)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ValidateImport(chain, key, nil, testNow)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCertificate(id, TypeImported, p, s, testNow)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := record(t, "shop", "shop.test")
	if err := CheckRecord(good, s); err != nil {
		t.Fatalf("a record as NewCertificate made it: %v", err)
	}
	other := record(t, "other", "other.test")
	otherSealer := newTestSealer(t)
	for name, tc := range map[string]struct {
		edit func(*Certificate)
		s    *Sealer
		want string
	}{
		"another cluster key":  {func(*Certificate) {}, otherSealer, "another cluster key"},
		"moved to another id":  {func(c *Certificate) { c.ID = "shop2" }, s, "corrupt"},
		"domains claimed":      {func(c *Certificate) { c.Domains = []string{"shop.test", "bank.test"} }, s, "the record says"},
		"expiry extended":      {func(c *Certificate) { c.NotAfter = c.NotAfter.Add(365 * 24 * time.Hour) }, s, "the record says"},
		"serial changed":       {func(c *Certificate) { c.Serial = "1" }, s, "the record says"},
		"chain swapped":        {func(c *Certificate) { c.ChainPEM = other.ChainPEM }, s, "key-mismatch"},
		"garbage chain":        {func(c *Certificate) { c.ChainPEM = "garbage" }, s, "chain"},
		"oversized chain":      {func(c *Certificate) { c.ChainPEM = strings.Repeat(c.ChainPEM, 200) }, s, "at most"},
		"sealed key garbage":   {func(c *Certificate) { c.KeySealed = "v1:AAAA" }, s, ""},
		"sealed key truncated": {func(c *Certificate) { c.KeySealed = c.KeySealed[:len(c.KeySealed)/2] }, s, ""},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := CheckRecord(c, tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckRecord: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestStaplable(t *testing.T) {
	pki := newPKI(t)
	withOCSP := leafTemplate("a.test")
	withOCSP.OCSPServer = []string{"http://ocsp.test/"}
	leaf := pki.leaf(t, withOCSP, nil)
	plain := pki.leaf(t, leafTemplate("a.test"), nil)
	selfSigned, _, err := SelfSigned([]string{"a.test"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		chain []byte
		want  bool
	}{
		"responder and issuer":    {pemCerts(leaf, pki.inter), true},
		"responder, no issuer":    {pemCerts(leaf), false},
		"responder, wrong issuer": {pemCerts(leaf, pki.root), false},
		"issuer, no responder":    {pemCerts(plain, pki.inter), false},
		"self-signed":             {selfSigned, false},
		"garbage":                 {[]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), false},
		"a key where a cert was":  {append(pemCerts(leaf), pemPKCS8Key(t, newECKey(t))...), false},
	} {
		if got := Staplable(tc.chain); got != tc.want {
			t.Errorf("%s: Staplable = %v, want %v", name, got, tc.want)
		}
	}
}

func TestDHParamsBits(t *testing.T) {
	ff := FFDHE2048()
	if bits, err := DHParamsBits(ff); err != nil || bits != 2048 {
		t.Fatalf("ffdhe2048: %d bits, %v", bits, err)
	}
	if bits, err := DHParamsBits(append(ff, "\n\n"...)); err != nil || bits != 2048 {
		t.Errorf("trailing whitespace: %d, %v", bits, err)
	}
	for name, in := range map[string][]byte{
		"empty":          nil,
		"not PEM":        []byte("dh params"),
		"another block":  []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		"garbage DER":    []byte("-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n"),
		"data after":     append(append([]byte{}, ff...), "ssl_ciphers NULL;"...),
		"a second block": append(append([]byte{}, ff...), ff...),
	} {
		if bits, err := DHParamsBits(in); err == nil {
			t.Errorf("%s: accepted (%d bits)", name, bits)
		}
	}
}
