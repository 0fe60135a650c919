package webserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	sftls "github.com/sitefleet/sitefleet/tls"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

// certFiles writes a self-signed certificate for names, its key readable
// by nginx's workers, and returns the files and a pool that trusts it.
func certFiles(t *testing.T, s *Server, dir string, names ...string) (CertFiles, *x509.CertPool) {
	t.Helper()
	chain, key, err := sftls.SelfSigned(names, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := CertFiles{Names: names, Chain: filepath.Join(dir, names[0]+".crt"), Key: filepath.Join(dir, names[0]+".key")}
	if err := os.WriteFile(f.Chain, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, key, 0o640); err != nil {
		t.Fatal(err)
	}
	if gid, err := s.WorkerGID(); err != nil {
		t.Fatal(err)
	} else if gid > 0 {
		if err := os.Chown(f.Key, 0, gid); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(chain)
	return f, pool
}

func TestTLSPlanIsValidated(t *testing.T) {
	base := func() Plan {
		return Plan{
			HTTPListen: "127.0.0.1:8080", HTTPSListen: "127.0.0.1:8443", DHParams: "/srv/dh.pem", PlaceholderRoot: "/srv/p",
			Sites: []Site{{Domain: "a.test", Aliases: []string{"b.test"}, TLS: &SiteTLS{
				Certificates: []CertFiles{{Names: []string{"a.test", "b.test"}, Chain: "/srv/a.crt", Key: "/srv/a.key"}},
				HSTS:         "max-age=60; includeSubDomains",
			}}},
		}
	}
	if _, err := Render(base(), Options{Prefix: "/srv/nginx"}); err != nil {
		t.Fatalf("valid plan: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*Plan)
		want   string // in the error
	}{
		"hsts injection":       {func(p *Plan) { p.Sites[0].TLS.HSTS = `max-age=1"; return 200 "x` }, "is not max-age=N"},
		"hsts garbage":         {func(p *Plan) { p.Sites[0].TLS.HSTS = "forever" }, `hsts "forever"`},
		"chain path with ;":    {func(p *Plan) { p.Sites[0].TLS.Certificates[0].Chain = "/srv/a.crt;" }, `"/srv/a.crt;"`},
		"key path relative":    {func(p *Plan) { p.Sites[0].TLS.Certificates[0].Key = "a.key" }, `"a.key" is not absolute`},
		"name of another site": {func(p *Plan) { p.Sites[0].TLS.Certificates[0].Names = []string{"c.test"} }, `"c.test"`},
		"name twice": {func(p *Plan) {
			p.Sites[0].TLS.Certificates = append(p.Sites[0].TLS.Certificates, p.Sites[0].TLS.Certificates[0])
		}, "two certificates for a.test"},
		"no dh params":        {func(p *Plan) { p.DHParams = "" }, "dh parameters"},
		"bad https listen":    {func(p *Plan) { p.HTTPSListen = "127.0.0.1:x" }, `https: listen address "127.0.0.1:x"`},
		"bad acme upstream":   {func(p *Plan) { p.ACMEChallengeUpstream = "127.0.0.1:0;" }, "acme challenge upstream"},
		"resolver injection":  {func(p *Plan) { p.Resolvers = []string{"1.1.1.1;"} }, `resolver "1.1.1.1;"`},
		"resolver parameters": {func(p *Plan) { p.Resolvers = []string{"1.1.1.1 valid=1s"} }, `resolver "1.1.1.1 valid=1s"`},
		"resolver hostname":   {func(p *Plan) { p.Resolvers = []string{"1.1.1.1", "dns.test"} }, `resolver "dns.test"`},
	} {
		t.Run(name, func(t *testing.T) {
			p := base()
			tc.change(&p)
			_, err := Render(p, Options{Prefix: "/srv/nginx"})
			if err == nil {
				t.Fatal("rendered")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestHTTPSServing(t *testing.T) {
	f := newFixture(t)
	s := f.newServer(t, f.options())
	certDir := filepath.Join(f.dir, "certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plainCert, plainRoots := certFiles(t, s, certDir, "plain.test")
	rulesCert, rulesRoots := certFiles(t, s, certDir, "rules.test", "alias.rules.test")
	dh := filepath.Join(f.dir, "dh.pem")
	if err := os.WriteFile(dh, sftls.FFDHE2048(), 0o644); err != nil {
		t.Fatal(err)
	}
	httpsAddr := f.listen[:strings.LastIndex(f.listen, ":")] + ":" + strconv.Itoa(freePort(t))
	plan := Plan{
		HTTPListen: f.listen, HTTPSListen: httpsAddr, DHParams: dh, PlaceholderRoot: f.placeholder,
		Sites: []Site{
			{Domain: "plain.test", Root: f.site(t, "plain", map[string]string{"index.html": "plain"}),
				TLS: &SiteTLS{Certificates: []CertFiles{plainCert}, RedirectHTTP: true, HSTS: "max-age=60"}},
			{Domain: "rules.test", Aliases: []string{"alias.rules.test"}, RedirectAliases: true,
				Root:  f.site(t, "rules", map[string]string{"index.html": "rules", "new.html": "new"}),
				Rules: &Rules{Redirects: []Redirect{{From: seg("old"), To: "/new", Status: 301}}},
				TLS:   &SiteTLS{Certificates: []CertFiles{rulesCert}, HSTS: "max-age=120; includeSubDomains"}},
			{Domain: "http-only.test"},
		},
	}
	mustApply(t, s, plan, true)
	run(t, s)
	waitServing(t, f.listen, "http-only.test", "/", 200, "placeholder\n")

	get := func(host, path string, roots *x509.CertPool) (*http.Response, string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: host, RootCAs: roots}, ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, httpsAddr)
			}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get("https://" + host + path)
		if err != nil {
			t.Fatalf("GET https://%s%s: %v", host, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, body := get("plain.test", "/", plainRoots)
	if resp.StatusCode != 200 || body != "plain" || resp.Header.Get("Strict-Transport-Security") != "max-age=60" || resp.ProtoMajor != 2 {
		t.Errorf("plain.test over HTTPS: %d %q HSTS %q %s", resp.StatusCode, body, resp.Header.Get("Strict-Transport-Security"), resp.Proto)
	}
	// The site with rules of its own: its rules and HSTS over HTTPS, and
	// its redirecting alias answered by the catch-all with its certificate.
	resp, _ = get("rules.test", "/old", rulesRoots)
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "/new" || resp.Header.Get("Strict-Transport-Security") != "max-age=120; includeSubDomains" {
		t.Errorf("rules.test/old over HTTPS: %d %q HSTS %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Strict-Transport-Security"))
	}
	resp, _ = get("alias.rules.test", "/x", rulesRoots)
	if resp.StatusCode != 301 || !strings.HasPrefix(resp.Header.Get("Location"), "https://rules.test") {
		t.Errorf("alias over HTTPS: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Plain HTTP: redirected where asked, no HSTS; ACME challenges not redirected.
	r := mustGet(t, f.listen, "plain.test", "/p?q=1")
	if _, port, _ := net.SplitHostPort(httpsAddr); r.status != 301 || r.header.Get("Location") != "https://plain.test:"+port+"/p?q=1" {
		t.Errorf("plain.test over HTTP: %d %q", r.status, r.header.Get("Location"))
	}
	if r := mustGet(t, f.listen, "plain.test", "/.well-known/acme-challenge/t"); r.status != 404 {
		t.Errorf("ACME challenge without upstream: %d, want 404", r.status)
	}
	if r := mustGet(t, f.listen, "rules.test", "/"); r.status != 200 || r.header.Get("Strict-Transport-Security") != "" {
		t.Errorf("rules.test over HTTP: %d HSTS %q", r.status, r.header.Get("Strict-Transport-Security"))
	}
	// Names without a certificate: the handshake is refused.
	for _, name := range []string{"http-only.test", "nobody.test", ""} {
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			t.Errorf("handshake for %q succeeded", name)
		}
	}
	if strings.Contains(f.logs.String(), "[error]") || strings.Contains(f.logs.String(), "[emerg]") {
		t.Errorf("nginx logged errors:\n%s", f.logs.String())
	}
}

// TestOCSPStapling: a certificate whose chain names an OCSP responder and
// holds its issuer is stapled with the responder's answer.
func TestOCSPStapling(t *testing.T) {
	f := newFixture(t)
	s := f.newServer(t, f.options())
	dir := filepath.Join(f.dir, "certs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A CA, and an OCSP responder on loopback that says "good".
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	var served atomic.Int64
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var der []byte
		if r.Method == http.MethodPost {
			der, _ = io.ReadAll(r.Body)
		} else {
			p, _ := url.PathUnescape(strings.TrimPrefix(r.URL.Path, "/"))
			der, _ = base64.StdEncoding.DecodeString(p)
		}
		req, err := ocsp.ParseRequest(der)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		resp, err := ocsp.CreateResponse(ca, ca, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
			ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}, caKey)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		served.Add(1)
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(responder.Close)

	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "staple.test"}, DNSNames: []string{"staple.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), OCSPServer: []string{responder.URL + "/"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, _ := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(leafKey)
	files := CertFiles{Names: []string{"staple.test"}, Chain: filepath.Join(dir, "staple.crt"), Key: filepath.Join(dir, "staple.key"), Staple: true}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(files.Chain, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	other, otherRoots := certFiles(t, s, dir, "other.test")
	dh := filepath.Join(f.dir, "dh.pem")
	if err := os.WriteFile(dh, sftls.FFDHE2048(), 0o644); err != nil {
		t.Fatal(err)
	}
	httpsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	mustApply(t, s, Plan{HTTPListen: f.listen, HTTPSListen: httpsAddr, DHParams: dh, PlaceholderRoot: f.placeholder, Sites: []Site{
		{Domain: "staple.test", TLS: &SiteTLS{Certificates: []CertFiles{files}}},
		{Domain: "other.test", TLS: &SiteTLS{Certificates: []CertFiles{other}}},
	}}, true)
	run(t, s)
	waitServing(t, f.listen, "staple.test", "/", 200, "placeholder\n")

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	testutil.WaitFor(t, "a stapled OCSP response", 10*time.Second, func() bool {
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{ServerName: "staple.test", RootCAs: roots})
		if err != nil {
			return false
		}
		defer conn.Close()
		st := conn.ConnectionState()
		if len(st.OCSPResponse) == 0 {
			return false
		}
		r, err := ocsp.ParseResponseForCert(st.OCSPResponse, st.PeerCertificates[0], ca)
		return err == nil && r.Status == ocsp.Good
	})
	// The other site is still served, per handshake, without stapling.
	conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{ServerName: "other.test", RootCAs: otherRoots})
	if err != nil {
		t.Fatalf("other.test: %v", err)
	}
	conn.Close()
	if served.Load() == 0 {
		t.Fatal("the responder was never asked")
	}
}
