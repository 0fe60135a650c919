package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/sitefleet/sitefleet/api"
	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/cluster"
	"github.com/sitefleet/sitefleet/deploy"
	"github.com/sitefleet/sitefleet/deploy/manifest"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/node"
	"github.com/sitefleet/sitefleet/state"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// bundleService wires the local bundle store to the state store and the
// fleet: it takes uploads (api.Bundles) and fetches bundles from peers
// (node.BundlePeers).
type bundleService struct {
	local *deploy.Store
	store *state.Store
	cli   *clientv3.Client // for the fleet's view
	node  string
	token string
	cfg   config.BundlesCfg
}

var _ api.Bundles = (*bundleService)(nil)

// Upload ingests an archive, checks the signature policy, records the
// bundle and waits until enough live nodes hold it.
func (b *bundleService) Upload(ctx context.Context, req api.UploadRequest) (client.UploadResult, error) {
	if req.SHA256 != "" {
		if err := state.ValidateSHA256(req.SHA256); err != nil {
			return client.UploadResult{}, err
		}
		if _, err := b.checkSignature(req.SHA256, req.Signature); err != nil {
			return client.UploadResult{}, err // refused before reading a byte
		}
	}
	info, err := b.local.Ingest(ctx, req.Body, req.SHA256)
	if err != nil {
		return client.UploadResult{}, bundleError(err)
	}
	signer, err := b.checkSignature(info.SHA256, req.Signature)
	if err == nil {
		err = checkManifest(b.local.Root(info.SHA256))
	}
	if err != nil {
		b.dropUnused(ctx, info.SHA256)
		return client.UploadResult{}, err
	}
	rec, created, err := b.store.PutBundle(ctx, state.Bundle{
		App: req.App, Version: req.Version, SHA256: info.SHA256, Size: info.Size, Files: info.Files,
		Unpacked: info.Unpacked, Format: info.Format, Signer: signer, UploadedAt: time.Now().UTC(), UploadedTo: b.node,
	})
	if err != nil {
		b.dropUnused(ctx, info.SHA256)
		return client.UploadResult{}, err
	}
	if err := b.Announce(ctx, info.SHA256); err != nil {
		return client.UploadResult{}, err
	}
	holders, err := b.waitReplicas(ctx, info.SHA256)
	if err != nil {
		return client.UploadResult{}, err
	}
	return client.UploadResult{Bundle: rec, Created: created, Holders: holders}, nil
}

// checkSignature verifies sig when given, and refuses a missing one when
// signatures are required. It returns the signing key's ID.
func (b *bundleService) checkSignature(sha, sig string) (string, error) {
	if sig == "" {
		if b.cfg.RequireSignature {
			return "", state.Errorf(state.Invalid, "this fleet requires signed bundles (bundles.requireSignature): send X-Sitefleet-Signature, e.g. `sitefleet app upload --sign KEYFILE`")
		}
		return "", nil
	}
	if len(b.cfg.PublicKeys) == 0 {
		return "", state.Errorf(state.Invalid, "the bundle is signed but no bundles.publicKeys are configured to verify it")
	}
	id, err := deploy.Verify(b.cfg.PublicKeys, sha, sig)
	if err != nil {
		return "", state.Errorf(state.Invalid, "bundle signature refused: %v", err)
	}
	return id, nil
}

// checkManifest refuses a bundle whose _redirects or _headers has a line
// that is malformed, unsupported or unsafe, naming the file and line.
func checkManifest(root string) error {
	m, err := manifest.Load(root, manifest.DefaultLimits())
	if err == nil {
		err = node.ToRules(m).Check()
	}
	if err != nil {
		return &state.Error{Code: state.Invalid, Message: "bundle manifest refused: " + err.Error(), Err: err}
	}
	return nil
}

// dropUnused removes a freshly ingested bundle that no record refers to.
func (b *bundleService) dropUnused(ctx context.Context, sha string) {
	if bs, err := b.store.ListBundles(ctx, ""); err == nil {
		for _, x := range bs {
			if x.SHA256 == sha {
				return
			}
		}
		_ = b.local.Remove(sha)
	}
}

// bundleError turns the store's typed errors into client errors.
func bundleError(err error) error {
	var le *deploy.LimitError
	var ee *deploy.EntryError
	var fe *deploy.FormatError
	var he *deploy.HashMismatchError
	switch {
	case errors.As(err, &le) && le.What == deploy.LimitArchiveSize:
		return &state.Error{Code: state.TooLarge, Message: le.Error(), Err: err}
	case errors.As(err, &le), errors.As(err, &ee), errors.As(err, &fe), errors.As(err, &he):
		return &state.Error{Code: state.Invalid, Message: err.Error(), Err: err}
	}
	return fmt.Errorf("ingest bundle: %w", err)
}

// minReplicas is the configured minimum, or 2 when two or more nodes are
// live and 1 otherwise.
func (b *bundleService) minReplicas(live int) int {
	if b.cfg.MinReplicas > 0 {
		return min(b.cfg.MinReplicas, max(live, 1))
	}
	if live >= 2 {
		return 2
	}
	return 1
}

// waitReplicas waits until minReplicas live nodes hold sha, or answers
// Unavailable at bundles.replicationTimeout.
func (b *bundleService) waitReplicas(ctx context.Context, sha string) ([]string, error) {
	deadline := time.Now().Add(b.cfg.ReplicationTimeout)
	for {
		holders, live, err := b.liveHolders(ctx, sha)
		if err != nil {
			return nil, err
		}
		need := b.minReplicas(live)
		if len(holders) >= need {
			return holders, nil
		}
		if time.Now().After(deadline) {
			return nil, state.Errorf(state.Unavailable, "the bundle is stored but held by %d of the %d live nodes required within %s; it keeps replicating, and uploading it again is safe",
				len(holders), need, b.cfg.ReplicationTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// liveHolders returns the live nodes that hold sha and the number of live
// nodes.
func (b *bundleService) liveHolders(ctx context.Context, sha string) ([]string, int, error) {
	names, err := b.store.Holders(ctx, sha)
	if err != nil {
		return nil, 0, err
	}
	v, err := b.view(ctx)
	if err != nil {
		return nil, 0, err
	}
	live := map[string]bool{}
	for _, n := range v.Nodes {
		if n.Live {
			live[n.Name] = true
		}
	}
	var out []string
	for _, n := range names {
		if live[n] || n == b.node {
			out = append(out, n)
		}
	}
	return out, max(len(live), 1), nil
}

func (b *bundleService) view(ctx context.Context) (cluster.View, error) {
	rctx, cancel := context.WithTimeout(ctx, b.store.Timeout())
	defer cancel()
	return cluster.ReadView(rctx, b.cli, b.store.Keys())
}

// Open serves the archive to a peer.
func (b *bundleService) Open(sha string) (io.ReadCloser, int64, error) { return b.local.Open(sha) }

// Announce records that this node holds sha.
func (b *bundleService) Announce(ctx context.Context, sha string) error {
	return b.store.AddHolder(ctx, sha, b.node)
}

// Withdraw records that this node no longer holds sha.
func (b *bundleService) Withdraw(ctx context.Context, sha string) error {
	return b.store.RemoveHolder(ctx, sha, b.node)
}

// Fetch copies sha from a live node that holds it, trying holders in a
// random order; the local store verifies the hash while it unpacks.
func (b *bundleService) Fetch(ctx context.Context, sha string) error {
	names, err := b.store.Holders(ctx, sha)
	if err != nil {
		return err
	}
	v, err := b.view(ctx)
	if err != nil {
		return err
	}
	addr := map[string]string{}
	for _, n := range v.Nodes {
		if n.Live && n.Name != b.node && n.APIAddress != "" {
			addr[n.Name] = n.APIAddress
		}
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	var errs []error
	for _, name := range names {
		if addr[name] == "" {
			continue
		}
		if err := b.fetchFrom(ctx, addr[name], sha); err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", name, err))
			continue
		}
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("no live node holds bundle %s", sha)
	}
	return errors.Join(errs...)
}

func (b *bundleService) fetchFrom(ctx context.Context, apiURL, sha string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(client.New(apiURL, b.token).FetchBundle(ctx, sha, pw)) }()
	_, err := b.local.Ingest(ctx, pr, sha)
	pr.CloseWithError(err)
	return err
}
