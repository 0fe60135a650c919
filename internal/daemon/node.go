// Package daemon assembles a node from its configuration and runs it:
// etcd, nginx, the reconciler, the fleet membership, the leader tasks
// and the API (Run).
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sitefleet/sitefleet/api"
	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/deploy"
	"github.com/sitefleet/sitefleet/hooks"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/internal/fsutil"
	"github.com/sitefleet/sitefleet/node"
	"github.com/sitefleet/sitefleet/protect"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
	"github.com/sitefleet/sitefleet/traffic"
	"github.com/sitefleet/sitefleet/webserver"
)

// Version is the version a node reports in its record and status; the
// binary sets it from its build.
var Version = "dev"

// Run runs a node until ctx ends: the etcd connection, nginx, the
// reconciler and the API. It returns when all of them have stopped.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	return RunDraining(ctx, nil, cfg, log)
}

// RunDraining is Run, and when drain is closed the node drains: it fails
// its readiness checks (/readyz and webserver.HealthPath answer 503) and
// keeps serving for shutdown.drain, then stops as when ctx ends. ctx
// ending stops it at once, draining or not.
func RunDraining(ctx context.Context, drain <-chan struct{}, cfg config.Config, log *slog.Logger) error {
	workers, err := workerIdentity(cfg.Web.Nginx.User, log)
	if err != nil {
		return err
	}
	cfg.Web.Nginx.User = workers
	if err := prepareDataDir(cfg.DataDir, cfg.Web.Nginx.User); err != nil {
		return err
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	apiLn, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen: %w", err)
	}
	defer apiLn.Close()
	etcd, err := cluster.OpenEtcd(ctx, etcdOptions(cfg, log))
	if err != nil {
		return err
	}
	defer etcd.Close()
	p, err := assemble(ctx, cfg, etcd, log)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	switch {
	case cfg.MemoryLimitBytes > 0:
		debug.SetMemoryLimit(cfg.MemoryLimitBytes)
	case cfg.MemoryLimitBytes == 0 && os.Getenv("GOMEMLIMIT") == "":
		mctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); followLiveHeap(mctx) }()
		defer func() { stop(); <-done }()
	}
	log.Info("node starting", "node", cfg.NodeName, "version", Version, "store", cfg.State.Store,
		"api", apiLn.Addr().String(), "http", cfg.Web.HTTPListen, "dataDir", cfg.DataDir)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() {
		select {
		case <-drain:
		case <-runCtx.Done():
			return
		}
		p.self.draining.Store(true)
		log.Info("draining: readiness checks fail while the node keeps serving; a second signal stops it at once", "for", cfg.Shutdown.Drain)
		select {
		case <-time.After(cfg.Shutdown.Drain):
		case <-runCtx.Done():
		}
		stopRun()
	}()
	err = p.run(runCtx, apiLn)
	log.Info("node stopped", "node", cfg.NodeName)
	return err
}

// parts are a node's long-running components, wired together.
type parts struct {
	cfg    config.Config
	log    *slog.Logger
	token  string
	store  *state.Store
	mirror *state.Mirror
	web    *webserver.Server
	node   *node.Node
	auth   *api.Auth
	audit  *api.Auditor
	self   *localStatus
	member *cluster.Member
	etcd   *cluster.Etcd
	srv    *http.Server
	// nginxSrv answers, on nginxLn (loopback), what nginx passes to the
	// node: ACME challenges and protected sites' auth checks.
	nginxSrv *http.Server
	nginxLn  net.Listener
	// traffic reads nginx's traffic log (nil when web.traffic is off);
	// jsonLog is the file it writes requests to, if any.
	traffic *traffic.Collector
	jsonLog *os.File
}

// assemble builds every part of a node; it starts nothing but checks that
// the node's name is free in the fleet.
func assemble(ctx context.Context, cfg config.Config, etcd *cluster.Etcd, log *slog.Logger) (_ *parts, err error) {
	token, err := ensureToken(cfg.TokenPath())
	if err != nil {
		return nil, err
	}
	placeholder, err := writePlaceholder(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	store, err := state.NewStore(state.Options{
		Client:    etcd.Client,
		Prefix:    cfg.State.Etcd.KeyPrefix,
		Timeout:   time.Duration(cfg.State.Etcd.Timeout) * time.Millisecond,
		MaxTxnOps: cfg.State.Etcd.MaxTxnOps,
	})
	if err != nil {
		return nil, err
	}
	sealer, err := openSealer(ctx, cfg, store, log)
	if err != nil {
		return nil, err
	}
	wopts := webOptions(cfg, log)
	web, err := webserver.New(wopts)
	if err != nil {
		return nil, err
	}
	local, err := deploy.OpenStore(filepath.Join(cfg.DataDir, "bundles"), deploy.Limits{
		MaxArchiveBytes: cfg.Bundles.MaxArchiveBytes, MaxUnpackedBytes: cfg.Bundles.MaxUnpackedBytes,
		MaxFiles: cfg.Bundles.MaxFiles, MaxPathLength: cfg.Bundles.MaxPathLength,
	})
	if err != nil {
		return nil, fmt.Errorf("bundle store: %w", err)
	}
	credential, err := newCredential()
	if err != nil {
		return nil, err
	}
	peerTLS, err := cfg.API.TLS.ClientTLS()
	if err != nil {
		return nil, err
	}
	serverTLS, err := cfg.API.TLS.ServerTLS()
	if err != nil {
		return nil, err
	}
	bundles := bundleService(cfg, local, store, etcd, credential, peerTLS)
	mirror := state.NewMirror(store, log.With("component", "state"))
	nopts := nodeOptions(cfg, mirror, web, local, bundles, placeholder, sealer, log)
	challenges := sftls.ChallengeHandler(store, sealer, mirror, log.With("component", "acme"))
	// nginx passes ACME challenges and the auth checks of protected sites
	// to a plain listener of the node's own on loopback: not the API,
	// which may serve HTTPS (with client certificates) and is reachable
	// from other machines, where nobody must be able to try passwords.
	nginxLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listener for nginx: %w", err)
	}
	defer func() {
		if err != nil {
			nginxLn.Close()
		}
	}()
	nopts.ACMEUpstream = nginxLn.Addr().String()
	nopts.AuthUpstream = nginxLn.Addr().String()
	passes := newPassHistogram()
	nopts.OnPass = observePass(passes)
	// The node serves a new state: the member publishes the record at once
	// (deploy --wait waits for it). The channel is made before either.
	applied := make(chan struct{}, 1)
	var counter *traffic.Collector // set below, before the node runs
	nopts.OnApplied = func() {
		select {
		case applied <- struct{}{}:
		default:
		}
		if counter != nil {
			counter.Changed()
		}
	}
	if nopts.KeyGroup, err = web.WorkerGID(); err != nil {
		return nil, err
	}
	n, err := node.New(nopts)
	if err != nil {
		return nil, err
	}
	var jsonLog *os.File
	if counter, jsonLog, err = newTrafficCollector(cfg, wopts.TrafficLog, n, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && jsonLog != nil {
			jsonLog.Close()
		}
	}()
	acmeTransport, err := acmeTransport(cfg.TLS.ACME.CACertificates)
	if err != nil {
		return nil, err
	}
	self := &localStatus{name: cfg.NodeName, api: cfg.AdvertisedAPI(), node: n, web: web}
	compactions := &cluster.CompactStats{}
	member, err := newMember(cfg, etcd, store, mirror, self.record, applied, sealer, acmeTransport, compactions, state.HashToken(credential), log)
	if err != nil {
		return nil, err
	}
	if err := member.CheckName(ctx); err != nil {
		return nil, err
	}
	status := &statusAdapter{local: self, member: member, etcd: etcd, keys: store.Keys(), timeout: store.Timeout()}
	auth := api.NewAuth(append([]string{token}, cfg.API.Tokens...), store, log)
	auditor := api.NewAuditor(store, log.With("component", "audit"))
	gate := protect.New(protect.Options{Gates: n.GateOf, HostHeader: webserver.AuthHostHeader, URIHeader: webserver.AuthURIHeader, Logger: log.With("component", "protect")})
	handler, err := api.NewHandler(api.Options{
		NodeName: cfg.NodeName, Store: store, Status: status, Auth: auth, Bundles: bundles, Waiter: status,
		Previews:      api.PreviewOptions{Domain: cfg.Previews.Domain, Expires: cfg.Previews.Expires},
		Certificates:  &sftls.Service{Records: store, Sealer: sealer},
		ACMEChallenge: challenges,
		Tokens:        store, Audit: auditor, Hooks: &hooks.Service{Store: store, Sealer: sealer},
		MaxBodyBytes: cfg.API.MaxBodyBytes, RequestTimeout: cfg.API.RequestTimeout, UploadTimeout: cfg.API.UploadTimeout, MaxUploads: cfg.API.MaxConcurrentUploads,
		Metrics: metricsHandler(status, n.AppliedCertificates, passes, etcdCollector{etcd: etcd, compactions: compactions, timeout: store.Timeout()}, counter), Logger: log.With("component", "api"),
	})
	if err != nil {
		return nil, err
	}
	srv := api.NewServer(handler, cfg.API.IdleTimeout, log)
	srv.TLSConfig = serverTLS
	mux := http.NewServeMux()
	mux.Handle("/.well-known/acme-challenge/", challenges)
	mux.Handle("GET "+webserver.AuthPath, gate)
	nginxSrv := api.NewServer(http.TimeoutHandler(mux, api.DefaultRequestTimeout, "timed out"), cfg.API.IdleTimeout, log)
	return &parts{cfg: cfg, log: log, token: token, store: store, mirror: mirror, web: web, node: n, auth: auth, member: member, etcd: etcd, audit: auditor, self: self, srv: srv, nginxSrv: nginxSrv, nginxLn: nginxLn, traffic: counter, jsonLog: jsonLog}, nil
}

func nodeOptions(cfg config.Config, source node.Source, web *webserver.Server, local *deploy.Store, peers node.BundlePeers, placeholder string, sealer *sftls.Sealer, log *slog.Logger) node.Options {
	return node.Options{
		Source:          source,
		Web:             web,
		Cache:           state.Cache{Path: filepath.Join(cfg.DataDir, "state-cache.json"), Prefix: cfg.State.Etcd.KeyPrefix},
		HTTPListen:      cfg.Web.HTTPListen,
		HTTPSListen:     cfg.Web.HTTPSListen,
		Sealer:          sealer,
		TLSDir:          filepath.Join(cfg.DataDir, "tls"),
		ACMEUpstream:    cfg.API.Listen,
		Resolvers:       resolvers(cfg.Web.Resolvers),
		PlaceholderRoot: placeholder,
		Previews:        &node.PreviewOptions{Domain: cfg.Previews.Domain, Certificate: cfg.Previews.Certificate, SelfSigned: cfg.Previews.SelfSigned},
		Bundles:         local,
		Peers:           peers,
		Quiescence:      time.Duration(cfg.Reconcile.Quiescence) * time.Millisecond,
		ResyncInterval:  time.Duration(cfg.Reconcile.Resync) * time.Millisecond,
		Logger:          log.With("component", "reconciler"),
	}
}

// run runs every part until ctx ends or one of them fails.
func (p *parts) run(ctx context.Context, apiLn net.Listener) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.web.Run(gctx) })
	g.Go(func() error { return p.mirror.Run(gctx) })
	g.Go(func() error { return p.node.Run(gctx) })
	g.Go(func() error { return p.auth.Run(gctx) })
	g.Go(func() error { return p.audit.Run(gctx) })
	g.Go(func() error { return p.member.Run(gctx) })
	g.Go(func() error { p.followReadiness(gctx); return nil })
	g.Go(func() error {
		p.etcd.MaintainEmbedded(gctx, p.cfg.Cluster.CompactInterval, p.log.With("component", "etcd"))
		return nil
	})
	g.Go(func() error { registerToken(gctx, p.store, p.token, p.cfg.NodeName, p.log); return nil })
	g.Go(func() error { return serveAPI(gctx, p.srv, apiLn) })
	if p.traffic != nil {
		g.Go(func() error { return p.traffic.Run(gctx) })
	}
	if p.jsonLog != nil {
		defer p.jsonLog.Close()
	}
	g.Go(func() error { return serveAPI(gctx, p.nginxSrv, p.nginxLn) })
	return g.Wait()
}

func newMember(cfg config.Config, etcd *cluster.Etcd, store *state.Store, mirror *state.Mirror, record func() cluster.NodeRecord, changed <-chan struct{}, sealer *sftls.Sealer, acmeTransport http.RoundTripper, compactions *cluster.CompactStats, credentialHash string, log *slog.Logger) (*cluster.Member, error) {
	id, err := ensureNodeID(filepath.Join(cfg.DataDir, "node-id"))
	if err != nil {
		return nil, err
	}
	tlsOpts := tlsLeaderOptions(cfg, etcd, store, sealer, log)
	tlsOpts.Snapshots = mirror
	return cluster.NewMember(cluster.MemberOptions{
		Client:             etcd.Client,
		Keys:               store.Keys(),
		Name:               cfg.NodeName,
		ID:                 id,
		TTL:                cfg.Cluster.LeaseTTL,
		PublishInterval:    cfg.Cluster.PublishInterval,
		DisallowLeadership: cfg.DisallowLeadership,
		Record:             record,
		CredentialHash:     credentialHash,
		Changed:            changed,
		Tasks: []cluster.LeaderTask{
			cluster.StaleMemberCleaner(etcd.Client, store.Keys(), cfg.Cluster.MemberRetention, min(cfg.Cluster.MemberRetention/10, time.Minute), store.Timeout()),
			cluster.BundleCollector(store, cfg.Bundles.KeepVersions, cfg.Bundles.GCInterval, log.With("component", "gc")),
			cluster.PreviewExpirer(store, mirror, log.With("component", "previews")),
			cluster.AuditTrimmer(store, cfg.API.AuditKeep, cfg.API.AuditMaxAge, time.Minute, log.With("component", "audit")),
			hooks.Task(hooks.Options{Store: store, Sealer: sealer, Logger: log.With("component", "hooks"),
				MaxAttempts: cfg.Hooks.MaxAttempts, DeployTimeout: cfg.Hooks.DeployTimeout, ExpiringWithin: cfg.Hooks.ExpiringWithin,
				Outcome: func(ctx context.Context, site string, rev int64) (bool, map[string]string, error) {
					return cluster.DeployOutcome(ctx, etcd.Client, store.Keys(), site, rev, store.Timeout())
				}}),
			cluster.Compactor(etcd.Client, store.Keys(), cfg.Cluster.CompactInterval, cfg.Cluster.CompactRetention, store.Timeout(), compactions, log.With("component", "compaction")),
			sftls.SelfSignedIssuer(tlsOpts),
			sftls.DHParamsGenerator(tlsOpts),
			sftls.ACMEIssuer(tlsOpts, sftls.ACMEOptions{
				DirectoryURL: cfg.TLS.ACME.DirectoryURL, Email: cfg.TLS.ACME.Email, Transport: acmeTransport,
				RetryMin: cfg.TLS.ACME.RetryMin, RetryMax: cfg.TLS.ACME.RetryMax,
			}),
		},
		Timeout: store.Timeout(),
		Logger:  log.With("component", "cluster"),
	})
}

func tlsLeaderOptions(cfg config.Config, etcd *cluster.Etcd, store *state.Store, sealer *sftls.Sealer, log *slog.Logger) sftls.LeaderOptions {
	return sftls.LeaderOptions{
		Store: store, Sealer: sealer,
		SelfSignedValidity: cfg.TLS.SelfSignedValidity, RenewBefore: cfg.TLS.RenewBefore,
		DHBits: cfg.TLS.DHParamBits, DHMaxAge: cfg.TLS.DHParamMaxAge,
		Logger: log.With("component", "tls"),
	}
}

// resolvers returns the configured DNS servers for nginx, or those of
// /etc/resolv.conf.
func resolvers(configured []string) []string {
	if len(configured) > 0 {
		return configured
	}
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && net.ParseIP(f[1]) != nil {
			out = append(out, f[1])
		}
	}
	return out
}

// acmeTransport is how the leader reaches the ACME CA: nil (Go's default
// transport, the system's roots) without caFile, else the system's roots
// plus caFile's.
func acmeTransport(caFile string) (http.RoundTripper, error) {
	if caFile == "" {
		return nil, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls.acme.caCertificates: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("tls.acme.caCertificates: no PEM certificate in %s", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// ensureNodeID returns the identity of this data directory, generating it
// at the first start. A node restarted with the same data directory is
// recognised as itself in the fleet registry.
func ensureNodeID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node id: %w", err)
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate node id: %w", err)
	}
	id := fmt.Sprintf("%x", raw)
	if err := fsutil.WriteFileAtomic(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("store node id: %w", err)
	}
	return id, nil
}

func etcdOptions(cfg config.Config, log *slog.Logger) cluster.EtcdOptions {
	return cluster.EtcdOptions{
		Store:     cfg.State.Store,
		Endpoints: cfg.EtcdEndpoints(),
		TLS: cluster.TLSOptions{
			CA:                cfg.State.Etcd.TLSConfiguration.CA,
			ClientCertificate: cfg.State.Etcd.TLSConfiguration.ClientCertificate,
			ClientKey:         cfg.State.Etcd.TLSConfiguration.ClientKey,
			SkipVerify:        cfg.State.Etcd.TLSSkipVerify,
		},
		Timeout:      time.Duration(cfg.State.Etcd.Timeout) * time.Millisecond,
		DataDir:      filepath.Join(cfg.DataDir, "etcd"),
		Name:         cfg.NodeName,
		ClientListen: cfg.State.Embedded.ClientListen,
		PeerListen:   cfg.State.Embedded.PeerListen,
		MaxTxnOps:    uint(cfg.State.Etcd.MaxTxnOps), // Validate refused negatives
		QuotaBytes:   cfg.State.Embedded.QuotaBytes,
		Logger:       log,
	}
}

func webOptions(cfg config.Config, log *slog.Logger) webserver.Options {
	prefix := cfg.Web.Nginx.Prefix
	if prefix == "" {
		prefix = filepath.Join(cfg.DataDir, "nginx")
	}
	return webserver.Options{
		Binary:               cfg.Web.Nginx.Binary,
		Prefix:               prefix,
		Manage:               cfg.Web.Nginx.Manage,
		ReloadCommand:        cfg.Web.Nginx.ReloadCommand,
		User:                 cfg.Web.Nginx.User,
		WorkerProcesses:      cfg.Web.Nginx.WorkerProcesses,
		AccessLog:            cfg.Web.Nginx.AccessLog,
		TrafficLog:           trafficLogPath(cfg, prefix),
		ExtraHTTPConfigFiles: cfg.Web.Nginx.ExtraHTTPConfigFiles,
		Logger:               log.With("component", "nginx"),
	}
}

// trafficLogPath is where nginx writes the traffic log ("" when
// web.traffic is off).
func trafficLogPath(cfg config.Config, prefix string) string {
	if !cfg.Web.Traffic.Enabled {
		return ""
	}
	return filepath.Join(prefix, "logs", "traffic.log")
}

// newTrafficCollector makes the reader of nginx's traffic log at path,
// with the JSON access log it writes (the file is the caller's to close);
// nil when web.traffic is off (path "").
func newTrafficCollector(cfg config.Config, path string, sites traffic.Resolver, log *slog.Logger) (*traffic.Collector, *os.File, error) {
	if path == "" {
		return nil, nil, nil
	}
	opts := traffic.Options{Path: path, Sites: sites, MaxSites: cfg.Web.Traffic.MaxSites, Logger: log.With("component", "traffic")}
	var file *os.File
	switch j := cfg.Web.Traffic.JSONLog; j {
	case "":
	case "stdout":
		opts.JSON = os.Stdout
	default:
		f, err := os.OpenFile(j, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("web.traffic.jsonLog: %w", err)
		}
		file, opts.JSON = f, f
	}
	return traffic.New(opts), file, nil
}

// serveAPI serves until ctx ends, then shuts down gracefully.
func serveAPI(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "") // certificates come from TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("api server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("api shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api server: %w", err)
	}
	return nil
}

// prepareDataDir creates the data directory. It is world-readable so that
// nginx workers, which run as an unprivileged user, can read what they
// serve; secrets in it are files of mode 0600.
func prepareDataDir(dir, nginxUser string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if os.Geteuid() != 0 || nginxUser == "root" {
		return nil // workers run as this user and can read what it wrote
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("dataDir %s is not reachable by nginx workers, which run as an unprivileged user: %s is not searchable by others (mode %o); use a dataDir under /var/lib or /srv, or chmod o+x %s", abs, d, fi.Mode().Perm(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// lockWait is how long a node waits for its data directory's lock.
const lockWait = 3 * time.Second

// lockDataDir takes an exclusive lock on the data directory, so that two
// nodes never share one.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	// A process that is ending, or a child forked a moment ago and not yet
	// exec'd, may still hold the lock briefly: wait a little for it.
	deadline := time.Now().Add(lockWait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("data directory %s is in use by another sitefleet node", dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ensureToken returns the node's admin token, generating it (mode 0600)
// at the first start.
func ensureToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	t := base64.RawURLEncoding.EncodeToString(raw)
	if err := fsutil.WriteFileAtomic(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store admin token: %w", err)
	}
	return t, nil
}

// registerToken publishes the token's hash in etcd so that every node of
// the fleet accepts it; it retries until it succeeds or ctx ends.
func registerToken(ctx context.Context, store *state.Store, token, nodeName string, log *slog.Logger) {
	delay := time.Second
	for {
		err := store.AddTokenHash(ctx, state.HashToken(token), "admin token of node "+nodeName)
		if err == nil {
			return
		}
		log.Debug("could not publish the admin token yet", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

const placeholderHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nothing deployed yet</title></head>
<body><h1>This site is served by sitefleet</h1>
<p>Nothing has been deployed to it yet.</p></body></html>
`

// writePlaceholder writes the page served by sites with nothing deployed.
func writePlaceholder(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, "placeholder")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("placeholder: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "index.html"), []byte(placeholderHTML), 0o644); err != nil {
		return "", fmt.Errorf("placeholder: %w", err)
	}
	return dir, nil
}
