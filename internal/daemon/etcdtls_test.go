package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// TestNodeEtcdTLS runs nodes against one external etcd that serves TLS and
// requires client certificates, configured as the state.etcd block
// configures them.
func TestNodeEtcdTLS(t *testing.T) {
	ca := etcdtest.NewCA(t)
	e := etcdtest.New(t, etcdtest.WithTLS(ca, true))
	cert := ca.ClientCert(t, "node")
	otherCA := etcdtest.NewCA(t)
	otherCert := otherCA.ClientCert(t, "stranger")
	tlsCfg := func(ca string, cert etcdtest.KeyPair) config.TLSConfig {
		return config.TLSConfig{CA: ca, ClientCertificate: cert.CertFile, ClientKey: cert.KeyFile}
	}

	// The config file as an operator writes it: every state.etcd key of the
	// README's example, in its flow style, loaded through loadConfig.
	t.Run("yaml config", func(t *testing.T) {
		localhost := "https://localhost:" + e.Endpoint()[len("https://127.0.0.1:"):]
		cases := []struct {
			name      string
			etcdBlock string
			want      config.EtcdConfig
			endpoints []string
		}{
			{
				name: "ca and client certificate",
				etcdBlock: fmt.Sprintf(`
    address: "%s,%s"
    tlsConfiguration: { ca: %q, clientCertificate: %q, clientKey: %q }
    tlsSkipVerify: false`, e.Endpoint(), localhost, ca.CertFile, cert.CertFile, cert.KeyFile),
				want:      config.EtcdConfig{Address: e.Endpoint() + "," + localhost, TLSConfiguration: tlsCfg(ca.CertFile, cert)},
				endpoints: []string{e.Endpoint(), localhost},
			},
			{
				name: "skip verify and client certificate",
				etcdBlock: fmt.Sprintf(`
    address: %q
    tlsConfiguration:
      clientCertificate: %q
      clientKey: %q
    tlsSkipVerify: true`, e.Endpoint(), cert.CertFile, cert.KeyFile),
				want:      config.EtcdConfig{Address: e.Endpoint(), TLSConfiguration: tlsCfg("", cert), TLSSkipVerify: true},
				endpoints: []string{e.Endpoint()},
			},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				base := nodeConfig(t, e.Endpoint()) // for its free ports and data directory
				doc := fmt.Sprintf(`dataDir: %q
nodeName: "yaml-node"
state:
  store: "etcd"
  etcd:
    keyPrefix: %q
    timeout: 1000%s
api:
  listen: %q
web:
  httpListen: %q
  httpsListen: %q
reconcile:
  quiescence: 5
`, base.DataDir, base.State.Etcd.KeyPrefix, tc.etcdBlock, base.API.Listen, base.Web.HTTPListen, base.Web.HTTPSListen)
				path := filepath.Join(t.TempDir(), "config.yaml")
				if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
					t.Fatal(err)
				}
				cfg, err := config.Load(viper.New(), path)
				if err != nil {
					t.Fatalf("loadConfig:\n%s\n%v", doc, err)
				}
				want := config.Default().State.Etcd
				want.KeyPrefix, want.Timeout = base.State.Etcd.KeyPrefix, 1000
				want.Address, want.TLSConfiguration, want.TLSSkipVerify = tc.want.Address, tc.want.TLSConfiguration, tc.want.TLSSkipVerify
				if got := cfg.State.Etcd; got != want {
					t.Fatalf("state.etcd = %+v, want %+v", got, want)
				}
				if got, want := cfg.State.Store, cluster.StoreEtcd; got != want {
					t.Fatalf("state.store = %q, want %q", got, want)
				}
				opts := etcdOptions(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
				wantTLS := cluster.TLSOptions{
					CA: want.TLSConfiguration.CA, ClientCertificate: want.TLSConfiguration.ClientCertificate,
					ClientKey: want.TLSConfiguration.ClientKey, SkipVerify: want.TLSSkipVerify,
				}
				if opts.TLS != wantTLS {
					t.Fatalf("etcdOptions TLS = %+v, want %+v", opts.TLS, wantTLS)
				}
				if got, want := opts.Endpoints, tc.endpoints; !reflect.DeepEqual(got, want) {
					t.Fatalf("etcdOptions endpoints = %q, want %q", got, want)
				}
				n := startNode(t, cfg)
				n.expectWorks(t, e, "yaml.test")
			})
		}
	})

	works := []struct {
		name string
		etcd func(*config.EtcdConfig)
	}{
		{"ca and client certificate", func(c *config.EtcdConfig) { c.TLSConfiguration = tlsCfg(ca.CertFile, cert) }},
		{"skip verify without ca", func(c *config.EtcdConfig) {
			c.TLSConfiguration = tlsCfg("", cert)
			c.TLSSkipVerify = true
		}},
	}
	for _, tc := range works {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := nodeConfig(t, e.Endpoint())
			tc.etcd(&cfg.State.Etcd)
			n := startNode(t, cfg)
			n.expectWorks(t, e, "tls.test")
		})
	}

	refused := []struct {
		name string
		etcd func(*config.EtcdConfig)
	}{
		{"no client certificate", func(c *config.EtcdConfig) { c.TLSConfiguration = config.TLSConfig{CA: ca.CertFile} }},
		{"client certificate of another ca", func(c *config.EtcdConfig) { c.TLSConfiguration = tlsCfg(ca.CertFile, otherCert) }},
		{"wrong ca", func(c *config.EtcdConfig) { c.TLSConfiguration = tlsCfg(otherCA.CertFile, cert) }},
		{"no ca: system roots", func(c *config.EtcdConfig) { c.TLSConfiguration = tlsCfg("", cert) }},
		{"plain http to the tls endpoint", func(c *config.EtcdConfig) {
			c.Address = "http://" + e.Endpoint()[len("https://"):]
			c.TLSConfiguration = tlsCfg(ca.CertFile, cert)
		}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := nodeConfig(t, e.Endpoint())
			tc.etcd(&cfg.State.Etcd)
			n := startNode(t, cfg)
			n.expectRefused(t, e, "refused.test")
		})
	}
}

// expectWorks checks that the node reads and writes etcd e: a site added
// through its API is stored in e and served by nginx.
func (n *testNode) expectWorks(t *testing.T, e *etcdtest.Server, domain string) {
	t.Helper()
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: domain}, client.Precondition{Create: true}); err != nil {
		t.Fatalf("PutSite: %v", err)
	}
	n.waitServed(domain)
	if _, _, err := n.etcdStore(t, e).GetSite(ctx, domain); err != nil {
		t.Fatalf("site not in etcd at %s: %v", e.Endpoint(), err)
	}
	n.eventually("status says etcd is reachable", 10*time.Second, func() error {
		st, err := n.api.Status(ctx)
		if err != nil {
			return err
		}
		if !st.Etcd.Reachable || st.Stale || st.AppliedRevision == 0 {
			return fmt.Errorf("status = %+v", st)
		}
		return nil
	})
}

// expectRefused checks that a node which etcd e refuses still runs and
// answers, fails writes with 503 and reports etcd unreachable.
func (n *testNode) expectRefused(t *testing.T, e *etcdtest.Server, domain string) {
	t.Helper()
	ctx := context.Background()
	resp, err := http.Get("http://" + n.cfg.API.Listen + "/healthz")
	if err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("/healthz = %d, want %d", got, want)
	}
	_, err = n.api.PutSite(ctx, state.Site{Domain: domain}, client.Precondition{})
	if got, want := client.StatusOf(err), http.StatusServiceUnavailable; got != want {
		t.Fatalf("PutSite: status %d (%v), want %d", got, err, want)
	}
	n.eventually("status says etcd is unreachable", 10*time.Second, func() error {
		st, err := n.api.Status(ctx)
		if err != nil {
			return err
		}
		if st.Etcd.Reachable || st.StaleSince == nil || !st.Stale || st.AppliedRevision != 0 || st.Ready {
			return fmt.Errorf("status = %+v", st)
		}
		return nil
	})
	if _, _, err := n.etcdStore(t, e).GetSite(ctx, domain); state.ErrorCode(err) != state.NotFound {
		t.Fatalf("GetSite from etcd: %v, want not found", err)
	}
}

// etcdStore returns a store of the node's key prefix in e, read with the
// test's own client.
func (n *testNode) etcdStore(t *testing.T, e *etcdtest.Server) *state.Store {
	t.Helper()
	s, err := state.NewStore(state.Options{Client: e.Client(t), Prefix: n.cfg.State.Etcd.KeyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
