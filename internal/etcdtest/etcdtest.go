// Package etcdtest runs a real, embedded single-member etcd for tests, on
// free loopback ports, with settings tuned for speed (short ticks, no fsync).
package etcdtest

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/sitefleet/sitefleet/internal/testutil"
)

// Server is an embedded etcd that a test can stop and restart on the same
// ports and data directory, to simulate an outage.
type Server struct {
	t         testing.TB
	dir       string
	clientURL url.URL
	peerURL   url.URL
	maxTxnOps uint
	tls       *serverTLS
	etcd      *embed.Etcd
}

// serverTLS is the TLS set-up of a member's client URL.
type serverTLS struct {
	ca             *CA
	clientCertAuth bool
	server         KeyPair // the member's certificate
	client         KeyPair // used by Client
}

// Option changes how the server is configured.
type Option func(*Server)

// WithMaxTxnOps sets the server's transaction operation limit.
func WithMaxTxnOps(n uint) Option { return func(s *Server) { s.maxTxnOps = n } }

// WithTLS serves the client URL over https (Endpoint returns an https URL)
// with a certificate for 127.0.0.1 and localhost issued by ca. With
// clientCertAuth the member also requires client certificates, and
// accepts those issued by ca. The peer URL stays plain http.
func WithTLS(ca *CA, clientCertAuth bool) Option {
	return func(s *Server) { s.tls = &serverTLS{ca: ca, clientCertAuth: clientCertAuth} }
}

// New starts an etcd member and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		t:         t,
		dir:       t.TempDir(),
		clientURL: url.URL{Scheme: "http", Host: FreeAddr(t)},
		peerURL:   url.URL{Scheme: "http", Host: FreeAddr(t)},
		maxTxnOps: embed.DefaultMaxTxnOps,
	}
	for _, o := range opts {
		o(s)
	}
	if s.tls != nil {
		s.clientURL.Scheme = "https"
		s.tls.server = s.tls.ca.ServerCert(t)
		s.tls.client = s.tls.ca.ClientCert(t, "etcdtest")
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string { return testutil.FreeAddr(t) }

// Start starts the member if it is stopped and waits until it serves.
func (s *Server) Start() {
	s.t.Helper()
	if s.etcd != nil {
		return
	}
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs = 10
	cfg.ElectionMs = 50
	cfg.UnsafeNoFsync = true
	cfg.MaxTxnOps = s.maxTxnOps
	if s.tls != nil {
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile:       s.tls.server.CertFile,
			KeyFile:        s.tls.server.KeyFile,
			ClientCertAuth: s.tls.clientCertAuth,
		}
		if s.tls.clientCertAuth {
			cfg.ClientTLSInfo.TrustedCAFile = s.tls.ca.CertFile
		}
	}
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	var e *embed.Etcd
	var err error
	// The ports of a stopped member can take a moment to be released.
	for try := 0; try < 50; try++ {
		if e, err = embed.StartEtcd(cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("start etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		s.t.Fatalf("etcd did not become ready")
	}
	s.etcd = e
}

// Stop stops the member; clients see it unreachable until Start.
func (s *Server) Stop() {
	if s.etcd == nil {
		return
	}
	s.etcd.Close()
	s.etcd = nil
}

// Endpoint returns the client URL: https://127.0.0.1:port with WithTLS,
// http://127.0.0.1:port otherwise.
func (s *Server) Endpoint() string { return s.clientURL.String() }

// Client returns a new client of the member, closed when the test ends.
// With WithTLS it trusts the member's CA and presents a client
// certificate issued by it.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	var tlsCfg *tls.Config
	if s.tls != nil {
		var err error
		tlsCfg, err = transport.TLSInfo{
			CertFile:      s.tls.client.CertFile,
			KeyFile:       s.tls.client.KeyFile,
			TrustedCAFile: s.tls.ca.CertFile,
		}.ClientConfig()
		if err != nil {
			t.Fatalf("etcd client tls: %v", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.Endpoint()},
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// String describes the member for test logs.
func (s *Server) String() string { return fmt.Sprintf("etcd at %s", s.Endpoint()) }
