package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/acmetest"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
)

func acmeNodeConfig(t *testing.T, endpoint, prefix string, c *acmetest.CA) config.Config {
	cfg := nodeConfig(t, endpoint)
	cfg.State.Etcd.KeyPrefix = prefix
	cfg.TLS.ACME.DirectoryURL = c.URL
	cfg.TLS.ACME.CACertificates = c.CAFile
	cfg.TLS.ACME.Email = "ops@example.test"
	cfg.TLS.ACME.RetryMin = time.Second
	cfg.TLS.ACME.RetryMax = 2 * time.Second
	return cfg
}

func (n *testNode) isLeader() bool {
	st, err := n.api.Status(context.Background())
	return err == nil && st.Leader
}

func (n *testNode) certStatus(id string) (client.CertificateInfo, bool) {
	l, err := n.api.ListCertificates(context.Background())
	if err != nil {
		return client.CertificateInfo{}, false
	}
	for _, c := range l.Certificates {
		if c.ID == id {
			return c, true
		}
	}
	return client.CertificateInfo{}, false
}

// TestACMEWithPebble obtains certificates from pebble with two nodes, the
// CA's challenge requests reaching the node that does not lead; checks
// the back-off after a failure; and stops the leader in the middle of an
// issuance: the new leader completes it, and the CA issues once.
func TestACMEWithPebble(t *testing.T) {
	e := etcdtest.New(t)
	prefix := "/acme-fleet"
	// The CA's validation requests go to node b's nginx.
	bHTTP := etcdtest.FreeAddr(t)
	c := acmetest.Start(t, bHTTP, 0)

	a := startNode(t, acmeNodeConfig(t, e.Endpoint(), prefix, c))
	a.eventually("node a leads", 20*time.Second, func() error {
		if !a.isLeader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	bcfg := acmeNodeConfig(t, e.Endpoint(), prefix, c)
	bcfg.NodeName = "b"
	bcfg.Web.HTTPListen = bHTTP
	b := startNode(t, bcfg)
	b.waitUnknown("acme.test") // b's nginx answers

	if out, err := a.cli("site", "add", "acme.test", "--alias", "www.acme.test", "--tls", "acme"); err != nil {
		t.Fatalf("site add: %v\n%s", err, out)
	}
	for _, name := range []string{"acme.test", "www.acme.test"} {
		a.eventually("certificate for "+name, 60*time.Second, func() error {
			cert, ok := a.certStatus("acme-" + name)
			if !ok || cert.Status != "valid" {
				return fmt.Errorf("%+v", cert)
			}
			return nil
		})
	}
	if b.isLeader() {
		t.Fatal("node b leads; the test wants the challenges on the node that does not")
	}
	for _, n := range []*testNode{a, b} {
		for _, name := range []string{"acme.test", "www.acme.test"} {
			n.eventually("HTTPS for "+name+" verified against the CA's root", 10*time.Second, func() error {
				leaf, err := n.handshake(name, c.Roots)
				if err == nil && (len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != name) {
					err = fmt.Errorf("served a certificate for %v", leaf.DNSNames)
				}
				return err
			})
		}
	}
	if got := c.Finalized.Load(); got != 2 {
		t.Fatalf("the CA issued %d certificates for two names, want 2", got)
	}

	// A failed validation: the name is marked failed, with its error and
	// next attempt, and obtained once the CA can reach the fleet again.
	c.Proxy.Cut()
	if out, err := a.cli("site", "add", "late.test", "--tls", "acme"); err != nil {
		t.Fatalf("site add: %v\n%s", err, out)
	}
	a.eventually("late.test marked failed", 60*time.Second, func() error {
		cert, ok := a.certStatus("acme-late.test")
		if !ok || cert.Status != "failed" || !strings.Contains(cert.Error, "could not validate late.test over http-01") || cert.NextAttempt == nil {
			return fmt.Errorf("%+v", cert)
		}
		return nil
	})
	// A failed name whose site goes away is forgotten: no status, and no
	// more attempts.
	if out, err := a.cli("site", "add", "gone.test", "--tls", "acme"); err != nil {
		t.Fatalf("site add: %v\n%s", err, out)
	}
	a.eventually("gone.test marked failed", 60*time.Second, func() error {
		if cert, ok := a.certStatus("acme-gone.test"); !ok || cert.Status != "failed" {
			return fmt.Errorf("%+v", cert)
		}
		return nil
	})
	if out, err := a.cli("site", "rm", "gone.test"); err != nil {
		t.Fatalf("site rm: %v\n%s", err, out)
	}
	a.eventually("gone.test forgotten", 10*time.Second, func() error {
		if cert, ok := a.certStatus("acme-gone.test"); ok {
			return fmt.Errorf("still listed: %+v", cert)
		}
		return nil
	})
	c.Proxy.Restore()
	a.eventually("late.test obtained after the back-off", 60*time.Second, func() error {
		if cert, ok := a.certStatus("acme-late.test"); !ok || cert.Status != "valid" {
			return fmt.Errorf("%+v", cert)
		}
		return nil
	})
	issued := c.Finalized.Load()

	// The leader stops while the CA validates: node b takes over, finds
	// no certificate in the shared cache, and obtains it; the CA issues
	// one certificate for the name, not two.
	c.Proxy.SetDelay(3 * time.Second)
	orders := c.Orders.Load()
	if out, err := a.cli("site", "add", "mid.test", "--tls", "acme"); err != nil {
		t.Fatalf("site add: %v\n%s", err, out)
	}
	a.eventually("the leader ordered mid.test", 30*time.Second, func() error {
		if c.Orders.Load() == orders {
			return fmt.Errorf("no order yet")
		}
		return nil
	})
	if cert, ok := a.certStatus("acme-mid.test"); !ok || cert.Status != "pending" {
		t.Errorf("mid.test during issuance: %+v, want pending", cert)
	}
	a.stop()
	c.Proxy.SetDelay(0)
	b.eventually("node b leads", 20*time.Second, func() error {
		if !b.isLeader() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	b.eventually("node b completes mid.test", 60*time.Second, func() error {
		_, err := b.handshake("mid.test", c.Roots)
		return err
	})
	time.Sleep(2 * time.Second) // anything the old leader had in flight has landed by now
	if got := c.Finalized.Load() - issued; got != 1 {
		t.Fatalf("the CA issued %d certificates for mid.test, want 1", got)
	}

	// No key the nodes serve appears in either node's log.
	keys, _ := filepath.Glob(filepath.Join(bcfg.DataDir, "tls", "*.key"))
	if len(keys) < 4 {
		t.Fatalf("key files on b: %v, want one per name", keys)
	}
	for _, k := range keys {
		pemKey, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Split(string(pemKey), "\n")[1]
		for _, n := range []*testNode{a, b} {
			if strings.Contains(n.logs.String(), line) {
				t.Fatalf("a node logged the key of %s", k)
			}
		}
	}
}

// TestACMERenewal: a certificate due for renewal is replaced by a new one
// from the CA, which every node then serves.
func TestACMERenewal(t *testing.T) {
	e := etcdtest.New(t)
	httpAddr := etcdtest.FreeAddr(t)
	c := acmetest.Start(t, httpAddr, 3600)
	cfg := acmeNodeConfig(t, e.Endpoint(), "/acme-renewal", c)
	cfg.Web.HTTPListen = httpAddr
	cfg.TLS.RenewBefore = time.Hour - 3*time.Second // due three seconds after issuance
	n := startNode(t, cfg)
	n.waitUnknown("renew.test")
	if out, err := n.cli("site", "add", "renew.test", "--tls", "acme"); err != nil {
		t.Fatalf("site add: %v\n%s", err, out)
	}
	var first client.CertificateInfo
	n.eventually("first certificate", 30*time.Second, func() error {
		var ok bool
		if first, ok = n.certStatus("acme-renew.test"); !ok || first.Serial == "" {
			return fmt.Errorf("%+v", first)
		}
		return nil
	})
	n.eventually("renewed certificate served", 30*time.Second, func() error {
		leaf, err := n.handshake("renew.test", c.Roots)
		if err == nil && fmt.Sprintf("%x", leaf.SerialNumber) == first.Serial {
			err = fmt.Errorf("still serving serial %s", first.Serial)
		}
		return err
	})
	if got := c.Finalized.Load(); got < 2 {
		t.Fatalf("the CA issued %d certificates, want a renewal", got)
	}
}
