package node

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
	"github.com/sitefleet/sitefleet/webserver"
)

func newTLSFiles(t *testing.T, log io.Writer) *tlsFiles {
	t.Helper()
	b64, err := sftls.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sftls.ParseKey(b64)
	s, err := sftls.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsFiles{dir: t.TempDir() + "/tls", sealer: s, log: slog.New(slog.NewTextHandler(log, nil)), written: map[string]webserver.CertFiles{}}
}

// TestDHParamsFiles: unusable parameters fall back to ffdhe2048 with one
// warning, unchanged ones are not written again.
func TestDHParamsFiles(t *testing.T) {
	var log bytes.Buffer
	tf := newTLSFiles(t, &log)
	for name, p := range map[string]*state.DHParams{
		"none":      nil,
		"malformed": {PEM: "-----BEGIN DH PARAMETERS-----\nAAAA\n-----END DH PARAMETERS-----\n"},
		"trailing":  {PEM: string(sftls.FFDHE2048()) + "ssl_ciphers NULL;\n"},
	} {
		path, err := tf.dhParams(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, sftls.FFDHE2048()) {
			t.Errorf("%s: %s does not hold ffdhe2048", name, path)
		}
	}
	if n := strings.Count(log.String(), "unusable"); n != 2 {
		t.Errorf("%d warnings for two unusable parameters:\n%s", n, log.String())
	}
	bad := &state.DHParams{PEM: "garbage"}
	path, _ := tf.dhParams(bad)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	again, err := tf.dhParams(bad)
	if err != nil || again != path {
		t.Fatalf("again: %q %v", again, err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("unchanged parameters were written again")
	}
}

func TestSiteTLSCertificates(t *testing.T) {
	tf := newTLSFiles(t, io.Discard)
	record := func(id string, typ state.CertType, names ...string) state.Certificate {
		chain, key, err := sftls.SelfSigned(names, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		p, err := sftls.ValidateImport(chain, key, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := sftls.NewCertificate(id, typ, p, tf.sealer, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	certs := map[string]state.Certificate{"acme-a.test": record("acme-a.test", state.CertACME, "a.test")}
	acme := state.Site{Domain: "a.test", Aliases: []string{"www.a.test"}, TLS: &state.SiteTLS{Mode: state.TLSACME, HSTS: &state.HSTS{MaxAge: 60}}}
	got, err := tf.siteTLS(acme, certs)
	if err != nil {
		t.Fatalf("acme site: %v", err) // a name not issued yet is no error
	}
	if len(got.Certificates) != 1 || strings.Join(got.Certificates[0].Names, ",") != "a.test" || got.HSTS != "max-age=60" {
		t.Fatalf("acme site: %+v", got)
	}
	if b, _ := os.ReadFile(got.Certificates[0].Key); !bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Errorf("key file %s does not hold the opened key", got.Certificates[0].Key)
	}
	if fi, err := os.Stat(got.Certificates[0].Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}
	imported := state.Site{Domain: "b.test", TLS: &state.SiteTLS{Mode: state.TLSImported, Certificate: "gone"}}
	if _, err := tf.siteTLS(imported, certs); err == nil || !strings.Contains(err.Error(), `"gone" does not exist`) {
		t.Errorf("imported site without its certificate: %v", err)
	}
	if got, err := tf.siteTLS(state.Site{Domain: "c.test"}, certs); got != nil || err != nil {
		t.Errorf("site without tls: %+v %v", got, err)
	}
}

// rootsOnly is a bundle store that holds every bundle: planSites asks it
// only for roots.
type rootsOnly struct{}

func (rootsOnly) Has(string) bool         { return true }
func (rootsOnly) Root(sha string) string  { return "/bundles/" + sha }
func (rootsOnly) List() ([]string, error) { return nil, nil }
func (rootsOnly) Remove(sha string) error { return nil }

// A pass builds the web server's form only of the sites whose record,
// served bundle, certificates or DH parameters changed; every other form
// is the last pass's. Each input is changed in turn and the form must
// follow it.
func TestPlanSitesRebuildsWhatChanged(t *testing.T) {
	n := &Node{opts: Options{Bundles: rootsOnly{}}, rules: map[string]cachedRules{}, tls: newTLSFiles(t, io.Discard)}
	record := func(rev int64) state.Certificate {
		chain, key, err := sftls.SelfSigned([]string{"*.t.test"}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		p, err := sftls.ValidateImport(chain, key, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := sftls.NewCertificate("wild", state.CertImported, p, n.tls.sealer, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c.Revision = rev
		return c
	}
	// Rules are looked up by bundle; these bundles have none.
	n.rules["b1"], n.rules["b2"] = cachedRules{}, cachedRules{}
	certs := []state.Certificate{record(1)}
	sites := []state.Site{
		{Domain: "a.t.test", Revision: 10, TLS: &state.SiteTLS{Mode: state.TLSImported, Certificate: "wild"}},
		{Domain: "b.t.test", Revision: 11, Deployment: &state.Deployment{SHA256: "b1"}},
		{Domain: "c.t.test", Revision: 12, TLS: &state.SiteTLS{Mode: state.TLSImported, Certificate: "missing"}},
	}
	var errs map[string]string
	plan := func(sites []state.Site, records []state.Certificate, dh string) []webserver.Site {
		errs = map[string]string{}
		return n.planSites(context.Background(), sites, records, dh, func(d string, err error) { errs[d] = err.Error() })
	}
	first := plan(sites, certs, "/dh1")
	if first[0].TLS == nil || len(first[0].TLS.Certificates) != 1 || first[1].Root != "/bundles/b1" || !strings.Contains(errs["c.t.test"], `"missing" does not exist`) {
		t.Fatalf("first plan: %+v, errors %v", first, errs)
	}
	again := plan(sites, certs, "/dh1")
	if again[0].TLS != first[0].TLS {
		t.Error("an unchanged site was built again")
	}
	if !strings.Contains(errs["c.t.test"], `"missing" does not exist`) {
		t.Errorf("a reused form lost its error: %v", errs)
	}

	renewed := []state.Certificate{record(2)}
	after := plan(sites, renewed, "/dh1")
	if after[0].TLS.Certificates[0].Chain == first[0].TLS.Certificates[0].Chain {
		t.Error("a renewed certificate did not reach the site's form")
	}
	redeployed := slices.Clone(sites)
	redeployed[1].Deployment = &state.Deployment{SHA256: "b2"} // same revision: a bundle not arrived yet falls back so
	if got := plan(redeployed, renewed, "/dh1"); got[1].Root != "/bundles/b2" {
		t.Errorf("another served bundle: root %q", got[1].Root)
	}
	changed := slices.Clone(redeployed)
	changed[0].Revision, changed[0].Aliases = 20, []string{"www.a.t.test"}
	if got := plan(changed, renewed, "/dh1"); !slices.Equal(got[0].Aliases, []string{"www.a.t.test"}) || got[0].TLS == after[0].TLS {
		t.Errorf("a changed record was not built again: %+v", got[0])
	}
	prev := plan(changed, renewed, "/dh1")
	if got := plan(changed, renewed, "/dh2"); got[0].TLS == prev[0].TLS {
		t.Error("new DH parameters did not rebuild the forms")
	}
	unsorted := []state.Site{changed[2], changed[0], changed[1]}
	if got := plan(unsorted, renewed, "/dh2"); len(got) != 3 || got[0].Domain != "c.t.test" || got[1].TLS == nil {
		t.Errorf("sites out of order: %+v", got)
	}
}
