package cluster_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/acmetest"
	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/state"
)

// TestACMELeaderKilledMidIssuance: the leader is SIGKILLed while the CA
// validates its order; another node takes over, finds nothing in the
// shared cache, obtains the certificate, and the CA issues it once. The
// CA's requests reach node3, which never leads.
func TestACMELeaderKilledMidIssuance(t *testing.T) {
	node3HTTP := testutil.FreeAddr(t)
	ca := acmetest.Start(t, node3HTTP, 0)
	f := newFleetWith(t, fleetOptions{
		http: []string{"", "", node3HTTP},
		tls: func(int) string {
			return fmt.Sprintf("  acme:\n    directoryURL: %s\n    caCertificates: %s\n    retryMin: 1s\n    retryMax: 2s\n", ca.URL, ca.CAFile)
		},
		extra: func(i int) string {
			if i == 2 {
				return "disallowLeadership: true\n"
			}
			return ""
		},
	})
	ca.Proxy.SetDelay(3 * time.Second) // the validation takes a while
	if _, err := f.client(0).PutSite(context.Background(), state.Site{Domain: "mid.test", TLS: &state.SiteTLS{Mode: state.TLSACME}}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	f.eventually("the leader orders mid.test", 30*time.Second, func() error {
		if ca.Orders.Load() == 0 {
			return fmt.Errorf("no order yet")
		}
		return nil
	})
	leader, err := leaderIndex(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if leader == 2 {
		t.Fatal("node3 leads although disallowLeadership is set")
	}
	f.kill(f.nodes[leader], false)
	ca.Proxy.SetDelay(0)
	n := f.nodes[2]
	f.eventually("node3 serves mid.test over HTTPS with the CA's certificate", 60*time.Second, func() error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.https, &tls.Config{ServerName: "mid.test", RootCAs: ca.Roots})
		if err != nil {
			return err
		}
		return conn.Close()
	})
	time.Sleep(2 * time.Second) // anything still in flight lands
	if got := ca.Finalized.Load(); got != 1 {
		t.Fatalf("the CA issued %d certificates for mid.test, want 1", got)
	}
}
