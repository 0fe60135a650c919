package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
)

func TestClientTLSRefusesBadFiles(t *testing.T) {
	ca := etcdtest.NewCA(t)
	node := ca.ClientCert(t, "node")
	other := ca.ClientCert(t, "other")
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-a-cert.pem")
	if err := os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	https := []string{"https://127.0.0.1:2379"}
	http := []string{"http://127.0.0.1:2379"}

	cases := []struct {
		name      string
		opts      TLSOptions
		endpoints []string
		want      string
	}{
		{"CA file missing", TLSOptions{CA: missing}, https, "read CA"},
		{"CA file is a directory", TLSOptions{CA: dir}, https, "read CA"},
		{"CA file without PEM", TLSOptions{CA: notPEM}, https, "no certificate found in CA file " + notPEM},
		{"CA file holding only a key", TLSOptions{CA: node.KeyFile}, https, "no certificate found in CA file"},
		{"CA file missing, http endpoint", TLSOptions{CA: missing}, http, "read CA"},
		{"certificate without key", TLSOptions{CA: ca.CertFile, ClientCertificate: node.CertFile}, https, "must be set together"},
		{"key without certificate", TLSOptions{CA: ca.CertFile, ClientKey: node.KeyFile}, https, "must be set together"},
		{"key without certificate, http endpoint", TLSOptions{ClientKey: node.KeyFile}, http, "must be set together"},
		{"key of another certificate", TLSOptions{ClientCertificate: node.CertFile, ClientKey: other.KeyFile}, https, "load client certificate"},
		{"certificate and key swapped", TLSOptions{ClientCertificate: node.KeyFile, ClientKey: node.CertFile}, https, "load client certificate"},
		{"certificate file missing", TLSOptions{ClientCertificate: missing, ClientKey: node.KeyFile}, https, "load client certificate"},
		{"key file missing", TLSOptions{ClientCertificate: node.CertFile, ClientKey: missing}, https, "load client certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := clientTLS(tc.opts, tc.endpoints)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("clientTLS(%+v) = %v, %v; want an error containing %q", tc.opts, cfg, err, tc.want)
			}
			// OpenEtcd refuses the same options before creating a client.
			e, err := OpenEtcd(context.Background(), EtcdOptions{Store: StoreEtcd, Endpoints: tc.endpoints, TLS: tc.opts, Timeout: time.Second})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				if e != nil {
					e.Close()
				}
				t.Fatalf("OpenEtcd: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestClientTLSConfig(t *testing.T) {
	ca := etcdtest.NewCA(t)
	node := ca.ClientCert(t, "node")
	caPool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	caPool.AppendCertsFromPEM(pem)
	https := []string{"https://127.0.0.1:2379", "https://127.0.0.2:2379"}

	cases := []struct {
		name       string
		opts       TLSOptions
		endpoints  []string
		wantNil    bool
		wantRoots  *x509.CertPool // nil: the system roots
		wantClient string         // common name of the client certificate
		wantSkip   bool
	}{
		{name: "http without options", endpoints: []string{"http://127.0.0.1:2379"}, wantNil: true},
		{name: "https without options uses the system roots", endpoints: https},
		{name: "https, only the second endpoint", endpoints: []string{"http://127.0.0.1:2379", "https://127.0.0.1:2380"}},
		{name: "CA", opts: TLSOptions{CA: ca.CertFile}, endpoints: https, wantRoots: caPool},
		{name: "client certificate without CA", opts: TLSOptions{ClientCertificate: node.CertFile, ClientKey: node.KeyFile}, endpoints: https, wantClient: "node"},
		{name: "CA and client certificate", opts: TLSOptions{CA: ca.CertFile, ClientCertificate: node.CertFile, ClientKey: node.KeyFile}, endpoints: https, wantRoots: caPool, wantClient: "node"},
		{name: "skip verify", opts: TLSOptions{SkipVerify: true}, endpoints: https, wantSkip: true},
		{name: "skip verify with client certificate", opts: TLSOptions{SkipVerify: true, ClientCertificate: node.CertFile, ClientKey: node.KeyFile}, endpoints: https, wantSkip: true, wantClient: "node"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := clientTLS(tc.opts, tc.endpoints)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantNil {
				if cfg != nil {
					t.Fatalf("got a TLS config %+v for plain http, want none", cfg)
				}
				return
			}
			if cfg == nil {
				t.Fatal("got no TLS config, want one")
			}
			if got, want := cfg.MinVersion, uint16(tls.VersionTLS12); got != want {
				t.Errorf("MinVersion = %x, want %x", got, want)
			}
			if got, want := cfg.InsecureSkipVerify, tc.wantSkip; got != want {
				t.Errorf("InsecureSkipVerify = %v, want %v", got, want)
			}
			if tc.wantRoots == nil && cfg.RootCAs != nil {
				t.Errorf("RootCAs set, want nil (the system roots)")
			}
			if tc.wantRoots != nil && (cfg.RootCAs == nil || !cfg.RootCAs.Equal(tc.wantRoots)) {
				t.Errorf("RootCAs is not the configured CA")
			}
			if cfg.ServerName != "" {
				t.Errorf("ServerName = %q, want empty (each endpoint's host is verified)", cfg.ServerName)
			}
			var got string
			if len(cfg.Certificates) > 1 {
				t.Fatalf("%d client certificates, want at most 1", len(cfg.Certificates))
			}
			if len(cfg.Certificates) == 1 {
				leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
				if err != nil {
					t.Fatal(err)
				}
				got = leaf.Subject.CommonName
			}
			if want := tc.wantClient; got != want {
				t.Errorf("client certificate %q, want %q", got, want)
			}
		})
	}
}

// TestOpenEtcdTLS connects to real etcd members serving TLS, one of them
// requiring client certificates, and checks which options can read.
func TestOpenEtcdTLS(t *testing.T) {
	ca := etcdtest.NewCA(t)
	otherCA := etcdtest.NewCA(t)
	node := ca.ClientCert(t, "node")
	stranger := otherCA.ClientCert(t, "stranger")
	mutual := etcdtest.New(t, etcdtest.WithTLS(ca, true))
	serverOnly := etcdtest.New(t, etcdtest.WithTLS(ca, false))
	plain := etcdtest.New(t)
	for _, s := range []*etcdtest.Server{mutual, serverOnly} {
		if got := s.Endpoint(); !strings.HasPrefix(got, "https://127.0.0.1:") {
			t.Fatalf("Endpoint() = %q, want https://127.0.0.1:port", got)
		}
	}
	localhost := strings.Replace(mutual.Endpoint(), "127.0.0.1", "localhost", 1)
	withCert := TLSOptions{CA: ca.CertFile, ClientCertificate: node.CertFile, ClientKey: node.KeyFile}

	// What the gRPC connection reports when it is refused. The client
	// verifies the server during the handshake, so that error is exact.
	// The server verifies the client after the client's side of a TLS 1.3
	// handshake is done: the client sees the server's alert or, as often,
	// the connection the server closed after sending it.
	var (
		unknownServerCA = []string{"x509: certificate signed by unknown authority"}
		noClientCert    = []string{"tls: certificate required", "broken pipe", "connection reset by peer"}
		badClientCert   = []string{"tls: unknown certificate authority", "broken pipe", "connection reset by peer"}
	)
	cases := []struct {
		name     string
		endpoint string
		opts     TLSOptions
		refusal  []string // nil if the connection works, else what the gRPC connection reports (one of)
	}{
		{"client cert auth: CA and client certificate", mutual.Endpoint(), withCert, nil},
		{"client cert auth: by host name", localhost, withCert, nil},
		{"client cert auth: no client certificate", mutual.Endpoint(), TLSOptions{CA: ca.CertFile}, noClientCert},
		{"client cert auth: certificate of another CA", mutual.Endpoint(), TLSOptions{CA: ca.CertFile, ClientCertificate: stranger.CertFile, ClientKey: stranger.KeyFile}, badClientCert},
		{"client cert auth: wrong CA", mutual.Endpoint(), TLSOptions{CA: otherCA.CertFile, ClientCertificate: node.CertFile, ClientKey: node.KeyFile}, unknownServerCA},
		{"client cert auth: no CA, system roots", mutual.Endpoint(), TLSOptions{ClientCertificate: node.CertFile, ClientKey: node.KeyFile}, unknownServerCA},
		{"client cert auth: skip verify, no CA", mutual.Endpoint(), TLSOptions{SkipVerify: true, ClientCertificate: node.CertFile, ClientKey: node.KeyFile}, nil},
		{"client cert auth: skip verify, wrong CA", mutual.Endpoint(), TLSOptions{SkipVerify: true, CA: otherCA.CertFile, ClientCertificate: node.CertFile, ClientKey: node.KeyFile}, nil},
		{"client cert auth: skip verify, no client certificate", mutual.Endpoint(), TLSOptions{SkipVerify: true}, noClientCert},
		{"server TLS: CA", serverOnly.Endpoint(), TLSOptions{CA: ca.CertFile}, nil},
		{"server TLS: no CA, system roots", serverOnly.Endpoint(), TLSOptions{}, unknownServerCA},
		{"server TLS: wrong CA", serverOnly.Endpoint(), TLSOptions{CA: otherCA.CertFile}, unknownServerCA},
		{"server TLS: skip verify", serverOnly.Endpoint(), TLSOptions{SkipVerify: true}, nil},
		{"plain http: TLS files unused", plain.Endpoint(), withCert, nil},
		{"https to a plain member", strings.Replace(plain.Endpoint(), "http://", "https://", 1), withCert, []string{"authentication handshake failed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := OpenEtcd(context.Background(), EtcdOptions{Store: StoreEtcd, Endpoints: []string{tc.endpoint}, TLS: tc.opts, Timeout: time.Second})
			if err != nil {
				t.Fatalf("OpenEtcd: %v", err)
			}
			defer e.Close()
			ok := tc.refusal == nil
			timeout := 500 * time.Millisecond
			if ok {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err = e.Client.Put(ctx, "/clustertest/"+t.Name(), "x")
			if got, want := err == nil, ok; got != want {
				t.Fatalf("Put to %s with %+v: err = %v, want success %v", tc.endpoint, tc.opts, err, want)
			}
			if ok {
				return
			}
			// The client's requests wait for a connection until their
			// deadline, which says nothing of why. A request that fails
			// fast, on a connection with the client's own credentials,
			// reports the connection error: check it is the expected one.
			conn, err := e.Client.Dial(tc.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = pb.NewKVClient(conn).Range(ctx, &pb.RangeRequest{Key: []byte("x")}, grpc.WaitForReady(false))
			if err == nil || !slices.ContainsFunc(tc.refusal, func(r string) bool { return strings.Contains(err.Error(), r) }) {
				t.Fatalf("fail-fast request: %v, want an error containing one of %q", err, tc.refusal)
			}
		})
	}
}

func TestOpenEtcdRefusesBadStores(t *testing.T) {
	cases := []struct {
		name string
		opts EtcdOptions
		want string
	}{
		{"unknown store", EtcdOptions{Store: "consul"}, `unknown store "consul"`},
		{"empty store", EtcdOptions{Store: ""}, `unknown store ""`},
		{"etcd without endpoints", EtcdOptions{Store: StoreEtcd}, "no endpoints"},
		{"embedded client listen on a private address", EtcdOptions{Store: StoreEmbedded, ClientListen: "10.1.2.3:2379"}, "client listen: \"10.1.2.3:2379\" is not a loopback address"},
		{"embedded client listen on all addresses", EtcdOptions{Store: StoreEmbedded, ClientListen: "0.0.0.0:2379"}, "not a loopback address"},
		{"embedded client listen without host", EtcdOptions{Store: StoreEmbedded, ClientListen: ":2379"}, "not a loopback address"},
		{"embedded client listen on a host name", EtcdOptions{Store: StoreEmbedded, ClientListen: "example.com:2379"}, "not a loopback address"},
		{"embedded client listen without port", EtcdOptions{Store: StoreEmbedded, ClientListen: "127.0.0.1"}, "client listen"},
		{"embedded peer listen on a private address", EtcdOptions{Store: StoreEmbedded, PeerListen: "192.168.1.1:2380"}, "peer listen: \"192.168.1.1:2380\" is not a loopback address"},
		{"embedded peer listen on IPv6 any", EtcdOptions{Store: StoreEmbedded, PeerListen: "[::]:2380"}, "not a loopback address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.DataDir = filepath.Join(t.TempDir(), "etcd")
			tc.opts.Timeout = time.Second
			e, err := OpenEtcd(context.Background(), tc.opts)
			if err == nil {
				e.Close()
				t.Fatalf("OpenEtcd(%+v) succeeded, want an error containing %q", tc.opts, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenEtcd: %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(tc.opts.DataDir); err == nil {
				t.Errorf("%s was created for a refused configuration", tc.opts.DataDir)
			}
		})
	}
}

func TestLoopbackURL(t *testing.T) {
	cases := []struct {
		in, want string // want "" for an error
	}{
		{"", "https://127.0.0.1:2379"},
		{"127.0.0.1:3379", "https://127.0.0.1:3379"},
		{"127.9.9.9:3379", "https://127.9.9.9:3379"},
		{"[::1]:3379", "https://[::1]:3379"},
		{"localhost:3379", "https://localhost:3379"},
		{"10.0.0.1:2379", ""},
		{"0.0.0.0:2379", ""},
		{"[::]:2379", ""},
		{":2379", ""},
		{"localhost.example.com:2379", ""},
		{"127.0.0.1", ""},
	}
	for _, tc := range cases {
		u, err := loopbackURL(tc.in, DefaultEmbeddedClientListen)
		got := u.String()
		if err != nil {
			got = ""
		}
		if got != tc.want {
			t.Errorf("loopbackURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
