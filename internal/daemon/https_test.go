package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// handshake connects to nginx's HTTPS port with SNI name and verifies the
// certificate against roots for that name.
func (n *testNode) handshake(name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", n.cfg.Web.HTTPSListen, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// getHTTPS requests path over HTTPS with SNI and Host host.
func (n *testNode) getHTTPS(host, path string, roots *x509.CertPool) (*http.Response, string, error) {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: host, RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, n.cfg.Web.HTTPSListen)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("https://" + host + path)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func poolOf(t *testing.T, chainPEM string) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM([]byte(chainPEM)) {
		t.Fatalf("no certificate in %q", chainPEM)
	}
	return p
}

func TestHTTPSSelfSigned(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	ctx := context.Background()

	if out, err := n.cli("site", "add", "self.test", "--alias", "www.self.test", "--tls", "selfsigned",
		"--https-redirect", "--hsts-max-age", "1h", "--hsts-include-subdomains"); err != nil {
		t.Fatalf("site add: %v\n%s", err, out)
	}
	var cert client.CertificateInfo
	n.eventually("the leader issues the self-signed certificate", 20*time.Second, func() error {
		var err error
		cert, err = n.api.GetCertificate(ctx, "selfsigned-self.test")
		return err
	})
	if cert.Type != "selfsigned" || strings.Join(cert.Domains, ",") != "self.test,www.self.test" || cert.Status != "valid" {
		t.Fatalf("certificate: %+v", cert)
	}
	roots := poolOf(t, cert.ChainPEM)
	for _, name := range []string{"self.test", "www.self.test"} {
		n.eventually("HTTPS handshake for "+name, 10*time.Second, func() error {
			leaf, err := n.handshake(name, roots)
			if err == nil && fmt.Sprintf("%x", leaf.SerialNumber) != cert.Serial {
				err = fmt.Errorf("served serial %x, want %s", leaf.SerialNumber, cert.Serial)
			}
			return err
		})
	}
	want := `sitefleet_certificate_expiry_timestamp_seconds{id="selfsigned-self.test",type="selfsigned"} ` +
		strconv.FormatFloat(float64(cert.NotAfter.Unix()), 'g', -1, 64)
	if m := n.metrics(); !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	// A name nobody configured: the handshake is refused.
	if _, err := n.handshake("other.test", nil); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("handshake for an unknown name: %v, want unrecognized name", err)
	}

	resp, body, err := n.getHTTPS("self.test", "/", roots)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(body, "served by sitefleet") {
		t.Fatalf("GET https://self.test/: %v %v %q", err, resp, body)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=3600; includeSubDomains" {
		t.Errorf("HSTS over HTTPS = %q", got)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTPS answered with %s, want HTTP/2", resp.Proto)
	}

	// Plain HTTP redirects to HTTPS, except ACME challenges; it has no HSTS.
	_, httpsPort, _ := net.SplitHostPort(cfg.Web.HTTPSListen)
	code, _, hdr, err := n.get("www.self.test", "/a/b?c=d")
	if err != nil || code != 301 || hdr.Get("Location") != "https://www.self.test:"+httpsPort+"/a/b?c=d" {
		t.Errorf("HTTP: %d %v Location %q, want a 301 to HTTPS", code, err, hdr.Get("Location"))
	}
	if hdr.Get("Strict-Transport-Security") != "" {
		t.Errorf("HSTS sent over plain HTTP")
	}
	// ACME challenges are not redirected: nginx passes them to the node,
	// which has no such token (404), whatever the path tries.
	for _, path := range []string{"/.well-known/acme-challenge/x",
		"/.well-known/acme-challenge/acme_account+key", "/.well-known/acme-challenge/" + strings.Repeat("t", 4000)} {
		if code, body, _, err := n.get("self.test", path); err != nil || code != 404 || strings.Contains(body, "PRIVATE") {
			t.Errorf("GET %.60s: %d %v %.100q, want 404", path, code, err, body)
		}
	}
	// A path that leaves the challenge directory once decoded
	// (/admin.token) is no challenge: redirected like any other path.
	if code, body, hdr, err := n.get("self.test", "/.well-known/acme-challenge/..%2f..%2fadmin.token"); err != nil || code != 301 ||
		!strings.HasPrefix(hdr.Get("Location"), "https://self.test:") || strings.Contains(body, "PRIVATE") {
		t.Errorf("GET a traversing challenge path: %d %v Location %q %.100q, want a 301 to HTTPS", code, err, hdr.Get("Location"), body)
	}
	if resp, err := http.Get("http://" + cfg.API.Listen + "/.well-known/acme-challenge/" + strings.Repeat("t", 10000)); err != nil || resp.StatusCode != 404 {
		t.Errorf("an oversized token at the API: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}

	// Turning TLS off removes the certificate (leader clean-up) and HTTPS.
	if out, err := n.cli("site", "set", "self.test", "--tls", "none"); err != nil {
		t.Fatalf("site set --tls none: %v\n%s", err, out)
	}
	n.eventually("the unused certificate is removed", 20*time.Second, func() error {
		if _, err := n.api.GetCertificate(ctx, "selfsigned-self.test"); client.StatusOf(err) != http.StatusNotFound {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	n.eventually("HTTPS refused for a site without TLS", 10*time.Second, func() error {
		if _, err := n.handshake("self.test", nil); err == nil || !strings.Contains(err.Error(), "unrecognized name") {
			return fmt.Errorf("handshake: %v", err)
		}
		return nil
	})
	if code, _, _, _ := n.get("self.test", "/"); code != 200 {
		t.Errorf("HTTP after TLS off: %d", code)
	}
}

func TestHTTPSImportedAndKeysStaySealed(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	ctx := context.Background()
	chain, key, err := sftls.SelfSigned([]string{"shop.test", "www.shop.test"}, 90*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	chainFile, keyFile := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(chainFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := n.cli("cert", "import", "shop", "--chain", chainFile, "--key", keyFile); err != nil {
		t.Fatalf("cert import: %v\n%s", err, out)
	}
	// The certificate does not cover this alias: refused, nothing stored.
	if out, err := n.cli("site", "add", "shop.test", "--alias", "cdn.shop.test", "--tls", "imported:shop"); err == nil || !strings.Contains(err.Error(), "does not cover cdn.shop.test") {
		t.Fatalf("site add with an uncovered alias: %v\n%s", err, out)
	}
	if out, err := n.cli("site", "add", "shop.test", "--alias", "www.shop.test", "--tls", "imported:shop"); err != nil {
		t.Fatalf("site add: %v\n%s", err, out)
	}
	roots := poolOf(t, string(chain))
	for _, name := range []string{"shop.test", "www.shop.test"} {
		n.eventually("HTTPS for "+name, 10*time.Second, func() error {
			_, err := n.handshake(name, roots)
			return err
		})
	}
	if out, err := n.cli("cert", "rm", "shop"); err == nil || !strings.Contains(err.Error(), "used by shop.test") {
		t.Fatalf("cert rm of a certificate in use: %v\n%s", err, out)
	}

	// The key never leaves in clear: not in state get, not in the API.
	// One line of the key's base64: it reads the same inside JSON, where
	// line breaks are escaped.
	secret := pemBody(string(key))
	export := filepath.Join(dir, "state.json")
	if out, err := n.cli("state", "get", "-o", export); err != nil {
		t.Fatalf("state get: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(export)
	if strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), secret) || !strings.Contains(string(b), `"keySealed": "v1:`) {
		t.Fatalf("state get leaks the key or lacks the sealed one:\n%s", b)
	}
	raw, err := e.Client(t).Get(ctx, cfg.State.Etcd.KeyPrefix+"/state/certs/shop")
	if err != nil || len(raw.Kvs) != 1 || strings.Contains(string(raw.Kvs[0].Value), secret) {
		t.Fatalf("the record in etcd holds the clear key (or is missing): %v", err)
	}
	out, err := n.cli("cert", "get", "shop", "-o", "json")
	if err != nil || strings.Contains(out, "PRIVATE") || strings.Contains(out, secret) {
		t.Fatalf("cert get: %v, leaks the key: %s", err, out)
	}
	if logs := n.logs.String(); strings.Contains(logs, secret) || strings.Contains(logs, "PRIVATE KEY") {
		t.Fatalf("the node logged the private key:\n%s", logs)
	}

	// The export restores into a cluster with the same key, and is
	// refused whole by a cluster with another key.
	var doc state.Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc.Revision = 0
	other := nodeConfig(t, e.Endpoint())
	other.State.Etcd.KeyPrefix += "-other"
	other.Secrets.Key = "b3RoZXItY2x1c3Rlci1rZXktMzItYnl0ZXMtbG9uZyE="
	o := startNode(t, other)
	if _, err := o.api.PutState(ctx, doc, false); client.StatusOf(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "another cluster key") {
		t.Fatalf("import into a cluster with another key: %v, want 422", err)
	}
	if l, err := o.api.ListSites(ctx); err != nil || len(l.Sites) != 0 {
		t.Fatalf("a refused import wrote sites: %+v %v", l.Sites, err)
	}
	same := nodeConfig(t, e.Endpoint())
	same.State.Etcd.KeyPrefix += "-same"
	s := startNode(t, same)
	if _, err := s.api.PutState(ctx, doc, false); err != nil {
		t.Fatalf("import into a cluster with the same key: %v", err)
	}
	n.eventually("the restored cluster serves HTTPS", 10*time.Second, func() error {
		_, err := s.handshake("www.shop.test", roots)
		return err
	})
}

func TestDHParamsFromTheLeader(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	store := n.etcdStore(t, e)
	ctx := context.Background()
	var snap *state.Snapshot
	n.eventually("the leader stores DH parameters", 60*time.Second, func() error {
		var err error
		if snap, err = store.Snapshot(ctx); err == nil && snap.DHParams == nil {
			err = fmt.Errorf("none yet")
		}
		return err
	})
	if snap.DHParams.Bits != 256 || !strings.Contains(snap.DHParams.PEM, "DH PARAMETERS") {
		t.Fatalf("dh params: %+v", snap.DHParams)
	}
	// 256 bits (a test size) are too few for OpenSSL: nginx keeps ffdhe2048.
	n.eventually("nginx uses ffdhe2048", 10*time.Second, func() error { return n.servedDHParams(string(sftls.FFDHE2048())) })

	// Parameters of a size OpenSSL accepts are served.
	good, err := os.ReadFile("testdata/dhparams-2048.pem")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutDHParams(ctx, state.DHParams{PEM: string(good), Bits: 2048, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	n.eventually("nginx uses the fleet's parameters", 10*time.Second, func() error { return n.servedDHParams(string(good)) })
	if code, _, _, err := n.get("x.test", "/"); err != nil || code != 404 {
		t.Fatalf("nginx does not answer after the DH change: %d %v", code, err)
	}
}

// servedDHParams checks that the live nginx.conf names DH parameters with
// the content want.
func (n *testNode) servedDHParams(want string) error {
	conf, err := os.ReadFile(filepath.Join(n.cfg.DataDir, "nginx", "conf", "nginx.conf"))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(conf), "\n") {
		if path, ok := strings.CutPrefix(strings.TrimSpace(line), "ssl_dhparam "); ok {
			b, err := os.ReadFile(strings.TrimSuffix(path, ";"))
			if err == nil && string(b) != want {
				err = fmt.Errorf("%s holds other parameters", path)
			}
			return err
		}
	}
	return fmt.Errorf("no ssl_dhparam in nginx.conf")
}

// TestSelfSignedRenewal: a self-signed certificate due for renewal is
// replaced, with a new serial, and served.
func TestSelfSignedRenewal(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.TLS.SelfSignedValidity = 2 * time.Hour
	cfg.TLS.RenewBefore = 2*time.Hour - 3*time.Second // due three seconds after issuance
	n := startNode(t, cfg)
	if out, err := n.cli("site", "add", "renew.test", "--tls", "selfsigned"); err != nil {
		t.Fatalf("site add: %v\n%s", err, out)
	}
	var first client.CertificateInfo
	n.eventually("first certificate", 20*time.Second, func() error {
		var err error
		first, err = n.api.GetCertificate(context.Background(), "selfsigned-renew.test")
		return err
	})
	n.eventually("renewed certificate served", 30*time.Second, func() error {
		c, err := n.api.GetCertificate(context.Background(), "selfsigned-renew.test")
		if err != nil {
			return err
		}
		if c.Serial == first.Serial {
			return fmt.Errorf("not renewed yet")
		}
		leaf, err := n.handshake("renew.test", poolOf(t, c.ChainPEM))
		if err == nil && fmt.Sprintf("%x", leaf.SerialNumber) != c.Serial {
			err = fmt.Errorf("serving %x, want %s", leaf.SerialNumber, c.Serial)
		}
		return err
	})
}
