package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/deploy"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/node"
	"github.com/sitefleet/sitefleet/state"
)

// bundleService is the node's deploy.Service: the local bundle store tied
// to the bundle records, the fleet's view and its peers' APIs.
func bundleService(cfg config.Config, local *deploy.Store, store *state.Store, etcd *cluster.Etcd, credential string, peerTLS *tls.Config) *deploy.Service {
	return &deploy.Service{
		Local: local, Records: store, Holders: store,
		Fleet: fleetView{etcd: etcd, store: store},
		Node:  cfg.NodeName,
		Policy: deploy.Policy{
			RequireSignature: cfg.Bundles.RequireSignature, PublicKeys: cfg.Bundles.PublicKeys,
			MinReplicas: cfg.Bundles.MinReplicas, ReplicationTimeout: cfg.Bundles.ReplicationTimeout,
		},
		CheckTree: node.CheckTree,
		Peers:     peerAPI{token: credential, tls: peerTLS},
	}
}

// peerAPI reaches other nodes' APIs with this node's credential, over
// HTTPS (with this node's certificate) where they advertise it.
type peerAPI struct {
	token string
	tls   *tls.Config
}

func (p peerAPI) client(apiURL string) *client.Client {
	return client.New(apiURL, p.token).WithTLS(p.tls)
}

func (p peerAPI) FetchObject(ctx context.Context, apiURL, sha string, w io.Writer) error {
	return notFound(p.client(apiURL).FetchObject(ctx, sha, w))
}

func (p peerAPI) FetchObjects(ctx context.Context, apiURL string, shas []string, read func(io.Reader) error) error {
	return notFound(p.client(apiURL).FetchObjects(ctx, shas, read))
}

func (p peerAPI) FetchArchive(ctx context.Context, apiURL, sha string, w io.Writer) error {
	return notFound(p.client(apiURL).FetchBundle(ctx, sha, w))
}

// notFound makes a peer's 404 match deploy.ErrNotFound.
func notFound(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusNotFound {
		return fmt.Errorf("%w: %w", deploy.ErrNotFound, err)
	}
	return err
}

// fleetView lists the live nodes from their records.
type fleetView struct {
	etcd  *cluster.Etcd
	store *state.Store
}

func (f fleetView) LiveNodes(ctx context.Context) ([]deploy.Peer, error) {
	rctx, cancel := context.WithTimeout(ctx, f.store.Timeout())
	defer cancel()
	v, err := cluster.ReadView(rctx, f.etcd.Client, f.store.Keys())
	if err != nil {
		return nil, err
	}
	var out []deploy.Peer
	for _, n := range v.Nodes {
		if n.Live {
			out = append(out, deploy.Peer{Name: n.Name, APIAddress: n.APIAddress})
		}
	}
	return out, nil
}
