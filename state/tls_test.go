package state_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// certRecord is a certificate record as the API stores it; the store
// does not look inside the chain or the sealed key.
func certRecord(id string, typ state.CertType, domains ...string) state.Certificate {
	return state.Certificate{ID: id, Type: typ, Domains: domains, ChainPEM: "-----BEGIN CERTIFICATE-----\n", KeySealed: "v1:sealed",
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
}

func TestSiteTLSValidation(t *testing.T) {
	hsts := func(age int, sub, pre bool) *state.HSTS {
		return &state.HSTS{MaxAge: age, IncludeSubdomains: sub, Preload: pre}
	}
	for _, tc := range []struct {
		tls  *state.SiteTLS
		want string // "" when valid
	}{
		{&state.SiteTLS{Mode: state.TLSSelfSigned, RedirectHTTP: true, HSTS: hsts(300, false, false)}, ""},
		{&state.SiteTLS{Mode: state.TLSACME, HSTS: hsts(state.MinHSTSPreloadAge, true, true)}, ""},
		{&state.SiteTLS{Mode: state.TLSNone}, ""},
		{&state.SiteTLS{Mode: ""}, "tls.mode: missing"},
		{&state.SiteTLS{Mode: "letsencrypt"}, "is not one of"},
		{&state.SiteTLS{Mode: state.TLSNone, RedirectHTTP: true}, "mode none takes no"},
		{&state.SiteTLS{Mode: state.TLSSelfSigned, Certificate: "x"}, "only mode imported"},
		{&state.SiteTLS{Mode: state.TLSImported}, "tls.certificate: certificate id"},
		{&state.SiteTLS{Mode: state.TLSImported, Certificate: "a;b"}, "lower-case letters"},
		{&state.SiteTLS{Mode: state.TLSImported, Certificate: "acme-x"}, "reserved"},
		{&state.SiteTLS{Mode: state.TLSACME, HSTS: hsts(0, false, false)}, "maxAge: 0 is outside"},
		{&state.SiteTLS{Mode: state.TLSACME, HSTS: hsts(state.MaxHSTSMaxAge+1, false, false)}, "is outside"},
		{&state.SiteTLS{Mode: state.TLSACME, HSTS: hsts(state.MinHSTSPreloadAge, false, true)}, "preload: requires"},
		{&state.SiteTLS{Mode: state.TLSACME, HSTS: hsts(600, true, true)}, "preload: requires"},
	} {
		got, err := state.NormalizeSite(state.Site{Domain: "x.test", TLS: tc.tls})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.tls, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || state.ErrorCode(err) != state.Invalid):
			t.Errorf("%+v: err %v, want an Invalid error containing %q", tc.tls, err, tc.want)
		case tc.want == "" && tc.tls.Mode == state.TLSNone && got.TLS != nil:
			t.Errorf("mode none normalised to %+v, want nil", got.TLS)
		}
	}
}

func TestHSTSHeader(t *testing.T) {
	h := state.HSTS{MaxAge: 63072000, IncludeSubdomains: true, Preload: true}
	if got, want := h.Header(), "max-age=63072000; includeSubDomains; preload"; got != want {
		t.Errorf("Header() = %q, want %q", got, want)
	}
}

func TestImportedCertificateMustExistAndCover(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	imported := &state.SiteTLS{Mode: state.TLSImported, Certificate: "shop"}
	site := state.Site{Domain: "shop.test", Aliases: []string{"www.shop.test", "a.cdn.test"}, TLS: imported}

	if _, err := s.PutSite(ctx, site, state.Precondition{}); state.ErrorCode(err) != state.Invalid || !strings.Contains(err.Error(), `"shop" does not exist`) {
		t.Fatalf("site naming a missing certificate: %v, want Invalid", err)
	}
	if _, err := s.PutCertificate(ctx, certRecord("shop", state.CertImported, "shop.test", "www.shop.test"), state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	_, err := s.PutSite(ctx, site, state.Precondition{})
	if state.ErrorCode(err) != state.Invalid || !strings.Contains(err.Error(), "does not cover a.cdn.test") {
		t.Fatalf("site with a name the certificate lacks: %v, want Invalid naming a.cdn.test", err)
	}
	if _, _, err := s.GetSite(ctx, "shop.test"); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("a refused site was stored: %v", err)
	}
	// A wildcard covers one label.
	if _, err := s.PutCertificate(ctx, certRecord("shop", state.CertImported, "shop.test", "*.shop.test", "*.cdn.test"), state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, site)
	// A replacement must still cover the site that serves it.
	if _, err := s.PutCertificate(ctx, certRecord("shop", state.CertImported, "shop.test", "*.shop.test"), state.Precondition{}); state.ErrorCode(err) != state.Invalid || !strings.Contains(err.Error(), "does not cover a.cdn.test") {
		t.Fatalf("replacing the certificate with one that does not cover the site: %v, want Invalid", err)
	}
	if c, _ := s.GetCertificate(ctx, "shop"); len(c.Domains) != 3 {
		t.Fatalf("a refused replacement was stored: %+v", c.Domains)
	}
	if _, err := s.PutCertificate(ctx, certRecord("shop", state.CertImported, "*.shop.test", "shop.test", "a.cdn.test"), state.Precondition{}); err != nil {
		t.Fatalf("replacing the certificate with one that covers the site: %v", err)
	}
	deep := site
	deep.Domain, deep.Aliases = "b.a.shop.test", nil
	if _, err := s.PutSite(ctx, deep, state.Precondition{}); state.ErrorCode(err) != state.Invalid {
		t.Fatalf("wildcard covering two labels: %v, want Invalid", err)
	}

	// A certificate in use cannot be deleted; once unused it can.
	err = s.DeleteCertificate(ctx, "shop")
	if state.ErrorCode(err) != state.InUse || !strings.Contains(err.Error(), "shop.test") {
		t.Fatalf("deleting a certificate in use: %v, want InUse naming the site", err)
	}
	if _, err := s.GetCertificate(ctx, "shop"); err != nil {
		t.Fatalf("certificate gone after a refused delete: %v", err)
	}
	site.TLS = nil
	mustPut(t, s, site)
	if err := s.DeleteCertificate(ctx, "shop"); err != nil {
		t.Fatalf("deleting an unused certificate: %v", err)
	}
	if err := s.DeleteCertificate(ctx, "shop"); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("deleting it again: %v, want NotFound", err)
	}
}

func TestAutoCertificatesInUse(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	mustPut(t, s, state.Site{Domain: "self.test", TLS: &state.SiteTLS{Mode: state.TLSSelfSigned}})
	mustPut(t, s, state.Site{Domain: "acme.test", Aliases: []string{"www.acme.test"}, TLS: &state.SiteTLS{Mode: state.TLSACME}})
	for _, c := range []state.Certificate{
		certRecord("selfsigned-self.test", state.CertSelfSigned, "self.test"),
		certRecord("acme-www.acme.test", state.CertACME, "www.acme.test"),
	} {
		if _, err := s.PutCertificate(ctx, c, state.Precondition{}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCertificate(ctx, c.ID); state.ErrorCode(err) != state.InUse {
			t.Errorf("deleting %s: %v, want InUse", c.ID, err)
		}
	}
}

func TestCertificatesExportAndImport(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.PutCertificate(ctx, certRecord("shop", state.CertImported, "shop.test"), state.Precondition{}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, state.Site{Domain: "shop.test", TLS: &state.SiteTLS{Mode: state.TLSImported, Certificate: "shop"}})
	doc, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Certificates) != 1 || doc.Certificates[0].KeySealed != "v1:sealed" || doc.Certificates[0].Revision != 0 {
		t.Fatalf("exported certificates: %+v", doc.Certificates)
	}

	// Into a fresh store: the site and its certificate arrive together.
	fresh, _ := newStore(t)
	doc.Revision = 0
	res, err := fresh.Import(ctx, doc, false)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if got := changesString(res.Changes); got != "add site shop.test,add certificate shop" {
		t.Errorf("changes: %s", got)
	}
	if _, err := fresh.GetCertificate(ctx, "shop"); err != nil {
		t.Fatalf("certificate not imported: %v", err)
	}
	res, err = fresh.Import(ctx, doc, false)
	if err != nil || len(res.Changes) != 0 {
		t.Fatalf("importing the same document again: %v %v, want no change", res.Changes, err)
	}

	// A document whose site names a certificate it does not carry is refused whole.
	bad := doc
	bad.Certificates = nil
	if _, err := fresh.Import(ctx, bad, false); state.ErrorCode(err) != state.Invalid || !strings.Contains(err.Error(), `"shop" does not exist`) {
		t.Fatalf("import without the site's certificate: %v, want Invalid", err)
	}
	for _, c := range []state.Certificate{
		{ID: "x", Type: "other", ChainPEM: "c", KeySealed: "k"},
		{ID: "Bad ID", Type: state.CertImported, ChainPEM: "c", KeySealed: "k"},
		{ID: "acme-", Type: state.CertACME, ChainPEM: "c", KeySealed: "k"},
		{ID: "acme-EXAMPLE.test", Type: state.CertACME, ChainPEM: "c", KeySealed: "k"},
		{ID: "selfsigned-x.test", Type: state.CertACME, ChainPEM: "c", KeySealed: "k"},
		{ID: "acme-" + strings.Repeat("a", 300) + ".test", Type: state.CertACME, ChainPEM: "c", KeySealed: "k"},
		{ID: "y", Type: state.CertImported, ChainPEM: "c"},
	} {
		bad := doc
		bad.Certificates = append([]state.Certificate{c}, doc.Certificates...)
		if _, err := fresh.Import(ctx, bad, false); state.ErrorCode(err) != state.Invalid {
			t.Errorf("import of record %+v: %v, want Invalid", c, err)
		}
	}
	// Removing both in one import works.
	if _, err := fresh.Import(ctx, state.Document{Sites: []state.Site{}}, false); err != nil {
		t.Fatal(err)
	}
	if certs, _ := fresh.ListCertificates(ctx); len(certs) != 0 {
		t.Fatalf("certificates left after importing none: %+v", certs)
	}
}
