// Package cluster owns a node's connection to etcd: an embedded single
// member or external endpoints, with TLS and client certificates.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Store kinds.
const (
	// StoreEmbedded runs a single etcd member inside the node.
	StoreEmbedded = "embedded"
	// StoreEtcd connects to external etcd endpoints.
	StoreEtcd = "etcd"
)

// Defaults for the embedded member.
const (
	DefaultEmbeddedClientListen = "127.0.0.1:2379"
	DefaultEmbeddedPeerListen   = "127.0.0.1:2380"
	// embeddedReadyTimeout bounds how long a node waits for its embedded
	// member to serve.
	embeddedReadyTimeout = 60 * time.Second
)

// TLSOptions configure TLS to external etcd endpoints.
type TLSOptions struct {
	// CA is a PEM file of the CA that signed the etcd servers' certificates;
	// empty means the system roots.
	CA string
	// ClientCertificate and ClientKey are PEM files of a client certificate,
	// for etcd servers that require one. Both or neither.
	ClientCertificate string
	ClientKey         string
	// SkipVerify disables verification of the servers' certificates.
	SkipVerify bool
}

// EtcdOptions configure the connection to etcd.
type EtcdOptions struct {
	// Store is StoreEmbedded or StoreEtcd.
	Store string
	// Endpoints are the external etcd URLs (StoreEtcd), e.g.
	// "https://host01:2379".
	Endpoints []string
	// TLS applies to https endpoints.
	TLS TLSOptions
	// Timeout bounds connection set-up operations and lease keep-alives.
	Timeout time.Duration
	// DataDir holds the embedded member's data (StoreEmbedded).
	DataDir string
	// CredentialsDir holds the embedded member's TLS credentials
	// (default: etcd-tls beside DataDir).
	CredentialsDir string
	// Name of the embedded member.
	Name string
	// ClientListen and PeerListen are the embedded member's loopback
	// host:port addresses.
	ClientListen string
	PeerListen   string
	// MaxTxnOps of the embedded member; 0 for etcd's default (128).
	MaxTxnOps uint
	// QuotaBytes is the embedded member's backend quota; 0 for etcd's
	// default (2 GiB). Past it etcd refuses writes (a NOSPACE alarm).
	QuotaBytes int64
	Logger     *slog.Logger
}

// Etcd is an open connection to etcd, and the embedded member if there is one.
type Etcd struct {
	Client   *clientv3.Client
	embedded *embed.Etcd
	creds    EmbeddedCredentials
	defrags  atomic.Int64
}

// Credentials returns the files a client of the embedded member needs
// (etcdctl --cacert CA --cert ClientCert --key ClientKey), or zero
// without one.
func (e *Etcd) Credentials() EmbeddedCredentials { return e.creds }

// OpenEtcd starts the embedded member (waiting until it serves) or
// prepares a client of external endpoints. Connecting to external endpoints
// does not block: a node starts while etcd is unreachable and its requests
// fail with timeouts until etcd is back.
func OpenEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	e := &Etcd{}
	endpoints := opts.Endpoints
	var tlsCfg *tls.Config
	switch opts.Store {
	case StoreEmbedded:
		m, creds, err := startEmbedded(ctx, opts)
		if err != nil {
			return nil, err
		}
		e.embedded, e.creds = m, creds
		endpoints = []string{"https://" + m.Clients[0].Addr().String()}
		if tlsCfg, err = clientTLS(TLSOptions{CA: creds.CA, ClientCertificate: creds.ClientCert, ClientKey: creds.ClientKey}, endpoints); err != nil {
			m.Close()
			return nil, err
		}
	case StoreEtcd:
		if len(endpoints) == 0 {
			return nil, errors.New("etcd: no endpoints configured (state.etcd.address)")
		}
		var err error
		if tlsCfg, err = clientTLS(opts.TLS, endpoints); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("etcd: unknown store %q (want %q or %q)", opts.Store, StoreEmbedded, StoreEtcd)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsCfg,
		DialTimeout:          opts.Timeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		PermitWithoutStream:  true,
		// Reconnect quickly once etcd is back; gRPC's default backoff
		// grows to two minutes.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
		Logger: zap.NewNop(),
	})
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	e.Client = cli
	return e, nil
}

// Close closes the client and stops the embedded member.
func (e *Etcd) Close() error {
	var err error
	if e.Client != nil {
		err = e.Client.Close()
	}
	if e.embedded != nil {
		e.embedded.Close()
	}
	return err
}

func clientTLS(o TLSOptions, endpoints []string) (*tls.Config, error) {
	// Checked first: a half-configured client certificate is an error
	// whatever the endpoints' scheme, not silently ignored for http.
	if (o.ClientCertificate == "") != (o.ClientKey == "") {
		return nil, errors.New("etcd tls: clientCertificate and clientKey must be set together")
	}
	secure := false
	for _, ep := range endpoints {
		secure = secure || strings.HasPrefix(ep, "https://")
	}
	if !secure && o.CA == "" && o.ClientCertificate == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.SkipVerify} //nolint:gosec // operator's explicit choice
	if o.CA != "" {
		pem, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd tls: read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd tls: no certificate found in CA file %s", o.CA)
		}
		cfg.RootCAs = pool
	}
	if o.ClientCertificate != "" {
		cert, err := tls.LoadX509KeyPair(o.ClientCertificate, o.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("etcd tls: load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func startEmbedded(ctx context.Context, opts EtcdOptions) (*embed.Etcd, EmbeddedCredentials, error) {
	cfg := embed.NewConfig()
	cfg.Name = opts.Name
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	cfg.Dir = opts.DataDir
	// Checked before anything is made on disk.
	clientURL, err := loopbackURL(opts.ClientListen, DefaultEmbeddedClientListen)
	if err != nil {
		return nil, EmbeddedCredentials{}, fmt.Errorf("embedded etcd client listen: %w", err)
	}
	peerURL, err := loopbackURL(opts.PeerListen, DefaultEmbeddedPeerListen)
	if err != nil {
		return nil, EmbeddedCredentials{}, fmt.Errorf("embedded etcd peer listen: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Dir), 0o755); err != nil {
		return nil, EmbeddedCredentials{}, fmt.Errorf("embedded etcd: %w", err)
	}
	credDir := opts.CredentialsDir
	if credDir == "" {
		credDir = filepath.Join(filepath.Dir(cfg.Dir), "etcd-tls")
	}
	creds, err := ensureCredentials(credDir)
	if err != nil {
		return nil, creds, err
	}
	tlsInfo := transport.TLSInfo{CertFile: creds.ServerCert, KeyFile: creds.ServerKey, TrustedCAFile: creds.CA, ClientCertAuth: true}
	cfg.ClientTLSInfo, cfg.PeerTLSInfo = tlsInfo, tlsInfo
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	if opts.MaxTxnOps > 0 {
		cfg.MaxTxnOps = opts.MaxTxnOps
	}
	if opts.QuotaBytes > 0 {
		cfg.QuotaBackendBytes = opts.QuotaBytes
	}
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	m, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, creds, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, err)
	}
	select {
	case <-m.Server.ReadyNotify():
		return m, creds, nil
	case err := <-m.Err():
		m.Close()
		return nil, creds, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(embeddedReadyTimeout):
		m.Close()
		return nil, creds, fmt.Errorf("embedded etcd did not become ready within %s", embeddedReadyTimeout)
	case <-ctx.Done():
		m.Close()
		return nil, creds, fmt.Errorf("embedded etcd: %w", ctx.Err())
	}
}

// loopbackURL turns a host:port into an https URL, refusing addresses
// that are not loopback: the embedded member is for this node alone.
func loopbackURL(hostport, def string) (url.URL, error) {
	if hostport == "" {
		hostport = def
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return url.URL{}, fmt.Errorf("%q: %w", hostport, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return url.URL{}, fmt.Errorf("%q is not a loopback address", hostport)
	}
	return url.URL{Scheme: "https", Host: hostport}, nil
}

// EtcdStatus is what the etcd member this node talks to reports of
// itself.
type EtcdStatus struct {
	// DBSize is the size of its database file; DBSizeInUse what of it
	// holds data (the rest is free pages that a defragmentation returns).
	DBSize, DBSizeInUse int64
	// Revision is the cluster's current revision.
	Revision int64
	// Quota is the embedded member's backend quota (0 when external).
	Quota int64
}

// Status asks the endpoints in turn for their status and returns the
// first answer.
func (e *Etcd) Status(ctx context.Context) (EtcdStatus, error) {
	var errs []error
	for _, ep := range e.Client.Endpoints() {
		st, err := e.Client.Status(ctx, ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
			continue
		}
		out := EtcdStatus{DBSize: st.DbSize, DBSizeInUse: st.DbSizeInUse, Revision: st.Header.Revision}
		if e.embedded != nil {
			out.Quota = e.embedded.Config().QuotaBackendBytes
			if out.Quota <= 0 {
				out.Quota = defaultQuota
			}
		}
		return out, nil
	}
	return EtcdStatus{}, fmt.Errorf("etcd status: %w", errors.Join(errs...))
}

// defaultQuota is etcd's backend quota when none is set.
const defaultQuota = 2 << 30

// Defragmentation of the embedded member: it is defragmented when at
// least defragMinFree bytes and half of its database file are free pages.
const defragMinFree = 32 << 20

// Defrags returns how many times the embedded member was defragmented.
func (e *Etcd) Defrags() int64 { return e.defrags.Load() }

// MaintainEmbedded checks the embedded member every interval and
// defragments it when worthwhile (after compactions freed much of its
// file), until ctx ends. Defragmenting blocks the member's reads and
// writes while it runs; an external etcd's defragmentation is its
// operator's to schedule. Without an embedded member it returns at once.
func (e *Etcd) MaintainEmbedded(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if e.embedded == nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := e.defragIfWorthwhile(ctx, log); err != nil && ctx.Err() == nil {
			log.Warn("could not defragment the embedded etcd member", "err", err)
		}
	}
}

func (e *Etcd) defragIfWorthwhile(ctx context.Context, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := e.Status(ctx)
	if err != nil {
		return err
	}
	free := st.DBSize - st.DBSizeInUse
	if free < defragMinFree || free < st.DBSize/2 {
		return nil
	}
	start := time.Now()
	if _, err := e.Client.Defragment(ctx, e.Client.Endpoints()[0]); err != nil {
		return fmt.Errorf("defragment: %w", err)
	}
	e.defrags.Add(1)
	log.Info("defragmented the embedded etcd member", "before", st.DBSize, "inUse", st.DBSizeInUse, "took", time.Since(start))
	return nil
}
