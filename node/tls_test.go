package node

import (
	"bytes"
	"io"
	"log/slog"
	"os"
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
