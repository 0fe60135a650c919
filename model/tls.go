package model

import (
	"fmt"
	"strings"
	"time"
)

// TLSMode says where a site's certificate comes from.
type TLSMode string

// The TLS modes of a site.
const (
	// TLSNone serves the site over HTTP only.
	TLSNone TLSMode = "none"
	// TLSSelfSigned serves a certificate the leader generates for the site.
	TLSSelfSigned TLSMode = "selfsigned"
	// TLSACME serves certificates the leader obtains from an ACME CA, one
	// per name of the site.
	TLSACME TLSMode = "acme"
	// TLSImported serves a certificate uploaded through the API.
	TLSImported TLSMode = "imported"
)

// SiteTLS is a site's HTTPS configuration. A nil *SiteTLS is mode none.
type SiteTLS struct {
	Mode TLSMode `json:"mode"`
	// Certificate is the ID of the imported certificate (mode imported only).
	Certificate string `json:"certificate,omitempty"`
	// RedirectHTTP answers plain-HTTP requests with a permanent redirect to
	// HTTPS (ACME challenges excepted).
	RedirectHTTP bool `json:"redirectHttp,omitempty"`
	// HSTS, when set, adds Strict-Transport-Security to HTTPS answers.
	HSTS *HSTS `json:"hsts,omitempty"`
}

// HSTS is the Strict-Transport-Security policy of a site.
type HSTS struct {
	// MaxAge is in seconds.
	MaxAge            int  `json:"maxAge"`
	IncludeSubdomains bool `json:"includeSubdomains,omitempty"`
	Preload           bool `json:"preload,omitempty"`
}

// Header is the Strict-Transport-Security header value.
func (h HSTS) Header() string {
	v := fmt.Sprintf("max-age=%d", h.MaxAge)
	if h.IncludeSubdomains {
		v += "; includeSubDomains"
	}
	if h.Preload {
		v += "; preload"
	}
	return v
}

// Equal compares two TLS configurations (nil is mode none).
func (t *SiteTLS) Equal(o *SiteTLS) bool {
	if t == nil || o == nil {
		return t == o
	}
	if (t.HSTS == nil) != (o.HSTS == nil) || t.HSTS != nil && *t.HSTS != *o.HSTS {
		return false
	}
	return t.Mode == o.Mode && t.Certificate == o.Certificate && t.RedirectHTTP == o.RedirectHTTP
}

// ModeOf returns the site's TLS mode (none when TLS is nil).
func (s Site) ModeOf() TLSMode {
	if s.TLS == nil {
		return TLSNone
	}
	return s.TLS.Mode
}

// CertIDs returns the IDs of the certificates the site serves.
func (s Site) CertIDs() []string {
	switch s.ModeOf() {
	case TLSImported:
		return []string{s.TLS.Certificate}
	case TLSSelfSigned:
		return []string{AutoCertID(CertSelfSigned, s.Domain)}
	case TLSACME:
		ids := make([]string, 0, 1+len(s.Aliases))
		for _, n := range s.Names() {
			ids = append(ids, AutoCertID(CertACME, n))
		}
		return ids
	}
	return nil
}

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

// AutoCertID is the ID of the certificate the leader obtains for name:
// "selfsigned-<domain>" covers a whole site, "acme-<name>" one name.
func AutoCertID(typ CertType, name string) string {
	return string(typ) + "-" + name
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

// Covers reports whether the certificate names host, directly or through
// a wildcard of one label ("*.example.com" covers "a.example.com").
func (c Certificate) Covers(host string) bool {
	for _, d := range c.Domains {
		if d == host {
			return true
		}
		if rest, ok := strings.CutPrefix(d, "*."); ok {
			if _, parent, found := strings.Cut(host, "."); found && parent == rest {
				return true
			}
		}
	}
	return false
}

// Uncovered returns the names the certificate does not cover.
func (c Certificate) Uncovered(names []string) []string {
	var out []string
	for _, n := range names {
		if !c.Covers(n) {
			out = append(out, n)
		}
	}
	return out
}
