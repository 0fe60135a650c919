package tls

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestNeedsRenewal(t *testing.T) {
	notAfter := testNow.Add(30 * 24 * time.Hour)
	window := 30 * 24 * time.Hour
	tests := []struct {
		name   string
		now    time.Time
		window time.Duration
		want   bool
	}{
		{"long before window", testNow.Add(-time.Hour), window, false},
		{"one ns before window", testNow.Add(-time.Nanosecond), window, false},
		{"window starts", testNow, window, true},
		{"inside window", testNow.Add(time.Hour), window, true},
		{"expired", notAfter.Add(time.Hour), window, true},
		{"zero window, at expiry", notAfter, 0, true},
		{"zero window, before expiry", notAfter.Add(-time.Nanosecond), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Certificate{NotAfter: notAfter}
			if got := NeedsRenewal(c, tt.now, tt.window); got != tt.want {
				t.Errorf("NeedsRenewal = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	long := string(bytes.Repeat([]byte("a"), 63))
	tests := []struct {
		id string
		ok bool
	}{
		{"a", true}, {"0", true}, {"my-cert-2026", true}, {long, true},
		{"", false}, {long + "a", false}, {"-a", false}, {"A", false},
		{"a.b", false}, {"a_b", false}, {"é", false},
		{"selfsigned-x", false}, {"acme-x", false}, {"selfsigned", true},
	}
	for _, tt := range tests {
		if err := ValidateID(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func TestAutoID(t *testing.T) {
	if got, want := AutoID(TypeACME, "Example.com"), "acme-example.com"; got != want {
		t.Errorf("AutoID = %q, want %q", got, want)
	}
}

func TestNewCertificate(t *testing.T) {
	s := newTestSealer(t)
	chainPEM, keyPEM, err := SelfSigned([]string{"www.example.com", "example.com"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ValidateImport(chainPEM, keyPEM, nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	id := AutoID(TypeSelfSigned, "www.example.com")
	c, err := NewCertificate(id, TypeSelfSigned, p, s, testNow)
	if err != nil {
		t.Fatalf("NewCertificate: %v", err)
	}
	if got, want := c.Domains, []string{"example.com", "www.example.com"}; !slices.Equal(got, want) {
		t.Errorf("Domains = %v, want %v", got, want)
	}
	if got, want := c.Issuer, "www.example.com"; got != want {
		t.Errorf("Issuer = %q, want %q", got, want)
	}
	if got, want := c.Serial, p.Leaf.SerialNumber.Text(16); got != want {
		t.Errorf("Serial = %q, want %q", got, want)
	}
	if bytes.Contains([]byte(c.KeySealed), []byte("PRIVATE")) || c.ChainPEM != string(p.ChainPEM) {
		t.Error("record holds a clear key or a different chain")
	}
	key, err := OpenKey(c, s)
	if err != nil || !bytes.Equal(key, p.KeyPEM) {
		t.Fatalf("OpenKey = %v; want the key PEM", err)
	}
	moved := c
	moved.ID = "imported-other"
	if _, err := OpenKey(moved, s); !errors.Is(err, ErrCorrupt) {
		t.Errorf("OpenKey of a moved key = %v, want ErrCorrupt", err)
	}
	if _, err := NewCertificate(id, Type("bogus"), p, s, testNow); err == nil {
		t.Error("NewCertificate accepted an unknown type")
	}
}
