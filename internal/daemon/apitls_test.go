package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/cli"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// With api.tls and a client CA, the API answers only HTTPS clients that
// present a certificate; nodes advertise https and fetch bundles from each
// other over it with their own certificates.
func TestAPIOverTLS(t *testing.T) {
	e := etcdtest.New(t)
	ca := etcdtest.NewCA(t)
	nodes := make([]*testNode, 2)
	cfgs := make([]config.Config, 2)
	for i, name := range []string{"a", "b"} {
		cfg := nodeConfig(t, e.Endpoint())
		cfg.NodeName = name
		pair := ca.ServerCert(t)
		cfg.API.TLS = config.APITLSConfig{Certificate: pair.CertFile, Key: pair.KeyFile, ClientCA: ca.CertFile, CA: ca.CertFile}
		cfg.Bundles.MinReplicas = 2
		cfgs[i] = cfg
	}
	for i := range cfgs {
		nodes[i] = startTLSNode(t, cfgs[i])
	}
	ctx := context.Background()
	clientPair := ca.ClientCert(t, "operator")
	tlsCfg, err := config.APITLSConfig{CA: ca.CertFile, Certificate: clientPair.CertFile, Key: clientPair.KeyFile}.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	a := client.New("https://"+cfgs[0].API.Listen, nodes[0].waitToken()).WithTLS(tlsCfg)

	// The fleet sees each node at an https address.
	var cl client.ClusterStatus
	nodes[0].eventually("both nodes registered", 10*time.Second, func() error {
		if cl, err = a.Cluster(ctx); err != nil {
			return err
		}
		if len(cl.Nodes) != 2 {
			return fmt.Errorf("%d nodes", len(cl.Nodes))
		}
		return nil
	})
	for _, n := range cl.Nodes {
		if !strings.HasPrefix(n.APIAddress, "https://") {
			t.Fatalf("node %s advertises %s", n.Name, n.APIAddress)
		}
	}

	// An upload through a is held by b too: b fetched it over HTTPS.
	if _, err := a.PutSite(ctx, state.Site{Domain: "tls.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	res, err := a.UploadBundle(ctx, "web", "1", bytes.NewReader(tarGz(t, map[string]string{"index.html": "over tls\n"})), "", "")
	if err != nil || len(res.Holders) != 2 {
		t.Fatalf("upload with two replicas over https: %+v %v", res, err)
	}

	// nginx still passes ACME challenges to the node (to a plain listener
	// of their own on loopback): the node's answer, not a 502.
	if code, body, _, err := nodes[1].get("tls.test", "/.well-known/acme-challenge/"+strings.Repeat("x", 43)); err != nil || code != 404 || !strings.Contains(body, "no such challenge") {
		t.Fatalf("ACME challenge through nginx: %d %q %v", code, body, err)
	}

	// Without a client certificate, over plain HTTP, or without trusting
	// the CA, nothing gets through.
	noCert, _ := config.APITLSConfig{CA: ca.CertFile}.ClientTLS()
	for name, c := range map[string]*client.Client{
		"no client certificate": client.New("https://"+cfgs[1].API.Listen, nodes[0].waitToken()).WithTLS(noCert),
		"plain http":            client.New("http://"+cfgs[1].API.Listen, nodes[0].waitToken()),
		"untrusted server":      client.New("https://"+cfgs[1].API.Listen, nodes[0].waitToken()).WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}),
	} {
		if _, err := c.ListSites(ctx); err == nil || client.StatusOf(err) == http.StatusOK {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The CLI, given the CA and a client certificate.
	var out, errOut bytes.Buffer
	cmd := cli.NewRoot(&out, &errOut)
	cmd.SetArgs([]string{"--server", cfgs[1].LocalAPI(), "--token", nodes[1].waitToken(),
		"--cacert", ca.CertFile, "--cert", clientPair.CertFile, "--key", clientPair.KeyFile, "site", "list"})
	if err := cmd.ExecuteContext(ctx); err != nil || !strings.Contains(out.String(), "tls.test") {
		t.Fatalf("CLI against an https API: %v\n%s%s", err, out.String(), errOut.String())
	}
}

// startTLSNode starts a node whose API serves HTTPS.
func startTLSNode(t *testing.T, cfg config.Config) *testNode {
	t.Helper()
	n := startNodeNoWait(t, cfg)
	tlsCfg, err := cfg.API.TLS.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	n.api = client.New(cfg.LocalAPI(), n.waitToken()).WithTLS(tlsCfg)
	n.eventually("API answers over https", 30*time.Second, func() error {
		_, err := n.api.Status(context.Background())
		return err
	})
	return n
}
