package state

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

// HSTS limits: two years is the most browsers honour; the preload list
// requires one year and includeSubDomains.
const (
	MaxHSTSMaxAge     = 2 * 365 * 24 * 3600
	MinHSTSPreloadAge = 365 * 24 * 3600
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
	// MaxAge is in seconds, 1 to MaxHSTSMaxAge.
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

// normalize validates t and returns its canonical form: nil for mode none.
func (t *SiteTLS) normalize() (*SiteTLS, error) {
	if t == nil {
		return nil, nil
	}
	out := *t
	if out.HSTS != nil {
		h := *out.HSTS
		out.HSTS = &h
	}
	switch out.Mode {
	case TLSNone:
		if out.Certificate != "" || out.RedirectHTTP || out.HSTS != nil {
			return nil, Errorf(Invalid, "tls: mode none takes no certificate, redirectHttp or hsts")
		}
		return nil, nil
	case TLSSelfSigned, TLSACME:
		if out.Certificate != "" {
			return nil, Errorf(Invalid, "tls.certificate: only mode imported names a certificate; mode %s obtains its own", out.Mode)
		}
	case TLSImported:
		if err := ValidateCertID(out.Certificate); err != nil {
			return nil, withField("tls.certificate", err)
		}
	case "":
		return nil, Errorf(Invalid, "tls.mode: missing; use none, selfsigned, acme or imported")
	default:
		return nil, Errorf(Invalid, "tls.mode: %.40q is not one of none, selfsigned, acme, imported", out.Mode)
	}
	if h := out.HSTS; h != nil {
		switch {
		case h.MaxAge < 1 || h.MaxAge > MaxHSTSMaxAge:
			return nil, Errorf(Invalid, "tls.hsts.maxAge: %d is outside 1..%d seconds", h.MaxAge, MaxHSTSMaxAge)
		case h.Preload && (!h.IncludeSubdomains || h.MaxAge < MinHSTSPreloadAge):
			return nil, Errorf(Invalid, "tls.hsts.preload: requires includeSubdomains and a maxAge of at least %d seconds (one year)", MinHSTSPreloadAge)
		}
	}
	return &out, nil
}

// ValidateCertID checks the ID of an imported certificate:
// [a-z0-9][a-z0-9-]{0,62}, not starting with a prefix that self-signed or
// ACME certificate IDs use. The error is an Invalid *Error.
func ValidateCertID(id string) error {
	if id == "" || len(id) > 63 {
		return Errorf(Invalid, "certificate id %.70q: must be 1 to 63 characters", id)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0
		if !ok {
			return Errorf(Invalid, "certificate id %.70q: use lower-case letters, digits and '-' (not first)", id)
		}
	}
	for _, t := range []CertType{CertSelfSigned, CertACME} {
		if strings.HasPrefix(id, string(t)+"-") {
			return Errorf(Invalid, "certificate id %q: prefix %q is reserved for %s certificates", id, string(t)+"-", t)
		}
	}
	return nil
}

// AutoCertID is the ID of the certificate the leader obtains for name:
// "selfsigned-<domain>" covers a whole site, "acme-<name>" one name.
func AutoCertID(typ CertType, name string) string {
	return string(typ) + "-" + name
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

// checkImportedCert refuses a site whose imported certificate is missing
// or does not cover all its names.
func checkImportedCert(site Site, cert *Certificate) error {
	if site.ModeOf() != TLSImported {
		return nil
	}
	if cert == nil {
		return Errorf(Invalid, "tls.certificate: certificate %q does not exist; import it first", site.TLS.Certificate)
	}
	if missing := cert.Uncovered(site.Names()); len(missing) > 0 {
		return Errorf(Invalid, "tls.certificate: certificate %q does not cover %s (it covers %s)",
			cert.ID, strings.Join(missing, ", "), strings.Join(cert.Domains, ", "))
	}
	return nil
}

// DHParams are the Diffie-Hellman parameters nginx uses for DHE cipher
// suites, generated by the leader. They are public.
type DHParams struct {
	PEM       string    `json:"pem"`
	Bits      int       `json:"bits"`
	CreatedAt time.Time `json:"createdAt"`
}
