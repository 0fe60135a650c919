// Command etcdmember runs one member of an etcd cluster, built from the etcd
// server module sitefleet already depends on. The multi-process tests use it
// so that they need no etcd installed; it is not part of the product.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcdmember:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := embed.NewConfig()
	var client, peer, state string
	flag.StringVar(&cfg.Name, "name", "m1", "member name")
	flag.StringVar(&cfg.Dir, "data-dir", "", "data directory")
	flag.StringVar(&client, "client-url", "", "client URL, e.g. http://127.0.0.1:2379")
	flag.StringVar(&peer, "peer-url", "", "peer URL, e.g. http://127.0.0.1:2380")
	flag.StringVar(&cfg.InitialCluster, "initial-cluster", "", "name=peerURL,...")
	flag.StringVar(&state, "initial-cluster-state", "new", "new or existing")
	flag.UintVar(&cfg.TickMs, "heartbeat-interval", 50, "ms")
	flag.UintVar(&cfg.ElectionMs, "election-timeout", 500, "ms")
	flag.StringVar(&cfg.ClientTLSInfo.CertFile, "cert-file", "", "server certificate for https client URLs")
	flag.StringVar(&cfg.ClientTLSInfo.KeyFile, "key-file", "", "its key")
	flag.StringVar(&cfg.ClientTLSInfo.TrustedCAFile, "trusted-ca-file", "", "CA of accepted client certificates")
	flag.BoolVar(&cfg.ClientTLSInfo.ClientCertAuth, "client-cert-auth", false, "require client certificates")
	flag.Parse()
	cu, err := url.Parse(client)
	if err != nil {
		return fmt.Errorf("client-url: %w", err)
	}
	pu, err := url.Parse(peer)
	if err != nil {
		return fmt.Errorf("peer-url: %w", err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ClusterState = state
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	ready := e.Server.ReadyNotify() // closes once the member has joined a quorum
	for {
		select {
		case <-ready:
			fmt.Println("ready")
			ready = nil
		case <-sig:
			return nil
		case err := <-e.Err():
			return err
		}
	}
}
