package daemon

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	sftls "github.com/sitefleet/sitefleet/tls"
)

func TestCertificateImport(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	ctx := context.Background()
	now := time.Now()
	chain, key, err := sftls.SelfSigned([]string{"shop.test", "www.shop.test"}, 90*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := sftls.SelfSigned([]string{"shop.test"}, 90*24*time.Hour, now)
	expiredChain, expiredKey, _ := sftls.SelfSigned([]string{"shop.test"}, time.Hour, now.Add(-48*time.Hour))

	cases := []struct {
		name string
		req  client.CertImport
		want string
	}{
		{"garbage chain", client.CertImport{ID: "c1", Chain: "not a certificate", Key: string(key)}, "parse-chain"},
		{"garbage key", client.CertImport{ID: "c1", Chain: string(chain), Key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "parse-key"},
		{"mismatched key", client.CertImport{ID: "c1", Chain: string(chain), Key: string(otherKey)}, "key-mismatch"},
		{"expired", client.CertImport{ID: "c1", Chain: string(expiredChain), Key: string(expiredKey)}, "expired"},
		{"wrong name", client.CertImport{ID: "c1", Chain: string(chain), Key: string(key), Domains: []string{"other.test"}}, "names"},
		{"bad id", client.CertImport{ID: "Bad/ID", Chain: string(chain), Key: string(key)}, "certificate id"},
		{"oversized chain", client.CertImport{ID: "c1", Chain: strings.Repeat(string(chain), 200), Key: string(key)}, "parse-chain"},
		{"reserved id", client.CertImport{ID: "acme-shop.test", Chain: string(chain), Key: string(key)}, "certificate id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.api.ImportCertificate(ctx, tc.req)
			if client.StatusOf(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import: %v, want 422 mentioning %q", err, tc.want)
			}
		})
	}
	if l, err := n.api.ListCertificates(ctx); err != nil || len(l.Certificates) != 0 {
		t.Fatalf("refused imports were stored: %+v %v", l, err)
	}

	info, err := n.api.ImportCertificate(ctx, client.CertImport{ID: "shop", Chain: string(chain), Key: string(key), Domains: []string{"shop.test", "www.shop.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != "imported" || strings.Join(info.Domains, ",") != "shop.test,www.shop.test" || info.Status != "valid" {
		t.Fatalf("imported = %+v", info)
	}

	// The key is stored sealed: neither etcd, the API, the export, the
	// CLI nor the log holds it in clear.
	keyBody := pemBody(string(key))
	resp, err := e.Client(t).Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Value), keyBody) || strings.Contains(string(kv.Value), "PRIVATE KEY") {
			t.Fatalf("etcd key %s holds the private key in clear", kv.Key)
		}
	}
	for _, args := range [][]string{{"cert", "list", "-o", "json"}, {"cert", "get", "shop", "-o", "json"}, {"state", "get"}} {
		out, err := n.cli(args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, keyBody) || strings.Contains(out, "PRIVATE KEY") {
			t.Fatalf("sitefleet %s prints the private key", strings.Join(args, " "))
		}
	}
	if out, _ := n.cli("cert", "list"); !strings.Contains(out, "shop") || !strings.Contains(out, "valid") {
		t.Fatalf("cert list: %q", out)
	}

	// The CLI imports from files, and removes.
	dir := t.TempDir()
	chainFile, keyFile := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(chainFile, chain, 0o600)
	_ = os.WriteFile(keyFile, key, 0o600)
	if out, err := n.cli("cert", "import", "shop2", "--chain", chainFile, "--key", keyFile, "--domain", "shop.test"); err != nil || !strings.Contains(out, "imported shop2") {
		t.Fatalf("cert import: %v %q", err, out)
	}
	if out, err := n.cli("cert", "rm", "shop2"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("cert rm: %v %q", err, out)
	}
	if err := n.api.DeleteCertificate(ctx, "shop2"); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("second delete: %v, want 404", err)
	}
}

// pemBody returns the base64 body of a PEM block, without its armour.
func pemBody(p string) string {
	lines := strings.Split(strings.TrimSpace(p), "\n")
	if len(lines) < 3 {
		return p
	}
	return strings.Join(lines[1:len(lines)-1], "")[:40]
}
