package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitefleet/sitefleet/state"
)

// siteTLSFlags are the TLS flags of `site add` and `site set`.
type siteTLSFlags struct {
	mode           string
	redirectHTTP   bool
	hstsMaxAge     time.Duration
	hstsSubdomains bool
	hstsPreload    bool
}

func (t *siteTLSFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&t.mode, "tls", "", "HTTPS certificate: selfsigned, acme, imported:CERT-ID or none")
	f.BoolVar(&t.redirectHTTP, "https-redirect", false, "answer plain HTTP with a 301 to HTTPS (ACME challenges excepted)")
	f.DurationVar(&t.hstsMaxAge, "hsts-max-age", 0, "send Strict-Transport-Security with this max-age (e.g. 8760h); 0 sends none")
	f.BoolVar(&t.hstsSubdomains, "hsts-include-subdomains", false, "add includeSubDomains to Strict-Transport-Security")
	f.BoolVar(&t.hstsPreload, "hsts-preload", false, "add preload to Strict-Transport-Security (needs includeSubDomains and a year)")
}

// apply changes site's TLS settings by the flags that were given; the
// server validates the result.
func (t *siteTLSFlags) apply(cmd *cobra.Command, site *state.Site) error {
	f := cmd.Flags()
	cur := state.SiteTLS{Mode: state.TLSNone}
	if site.TLS != nil {
		cur = *site.TLS
	}
	if f.Changed("tls") {
		mode, id, _ := strings.Cut(t.mode, ":")
		cur.Mode, cur.Certificate = state.TLSMode(mode), id
		switch cur.Mode {
		case state.TLSImported:
			if id == "" {
				return fmt.Errorf("--tls imported needs the certificate's id: --tls imported:ID")
			}
		case state.TLSNone, state.TLSSelfSigned, state.TLSACME:
			if id != "" {
				return fmt.Errorf("--tls %s takes no certificate id", mode)
			}
			if cur.Mode == state.TLSNone {
				cur.RedirectHTTP, cur.HSTS = false, nil
			}
		default:
			return fmt.Errorf("--tls %q: use selfsigned, acme, imported:ID or none", t.mode)
		}
	}
	if f.Changed("https-redirect") {
		cur.RedirectHTTP = t.redirectHTTP
	}
	if f.Changed("hsts-max-age") || f.Changed("hsts-include-subdomains") || f.Changed("hsts-preload") {
		h := state.HSTS{}
		if cur.HSTS != nil {
			h = *cur.HSTS
		}
		if f.Changed("hsts-max-age") {
			if t.hstsMaxAge%time.Second != 0 || t.hstsMaxAge < 0 {
				return fmt.Errorf("--hsts-max-age %s: give a whole, non-negative number of seconds", t.hstsMaxAge)
			}
			h.MaxAge = int(t.hstsMaxAge / time.Second)
		}
		if f.Changed("hsts-include-subdomains") {
			h.IncludeSubdomains = t.hstsSubdomains
		}
		if f.Changed("hsts-preload") {
			h.Preload = t.hstsPreload
		}
		cur.HSTS = &h
		if h.MaxAge == 0 && f.Changed("hsts-max-age") {
			cur.HSTS = nil
		}
	}
	site.TLS = &cur
	if cur.Mode == state.TLSNone && !cur.RedirectHTTP && cur.HSTS == nil {
		site.TLS = nil
	}
	return nil
}

// describeTLS is the one-line summary of a site's TLS settings.
func describeTLS(t *state.SiteTLS) string {
	if t == nil {
		return "none"
	}
	s := string(t.Mode)
	if t.Certificate != "" {
		s += ":" + t.Certificate
	}
	if t.RedirectHTTP {
		s += ", http redirects to https"
	}
	if t.HSTS != nil {
		s += ", hsts " + t.HSTS.Header()
	}
	return s
}
