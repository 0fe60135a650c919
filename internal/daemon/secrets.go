package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/internal/fsutil"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// openSealer returns the sealer of the cluster key: secrets.key when set,
// else the key kept in <dataDir>/secrets.key, generated (mode 0600) at the
// first start. It then checks the key against the one the fleet uses: a
// node with another key refuses to start, since it could neither read nor
// write the fleet's secrets. When etcd cannot be reached the check is
// skipped with a warning; the node serves what it has.
func openSealer(ctx context.Context, cfg config.Config, store *state.Store, log *slog.Logger) (*sftls.Sealer, error) {
	encoded, err := clusterKey(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := sftls.ParseKey(encoded)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	sealer, err := sftls.NewSealer(raw)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	fleet, err := store.ClaimKeyID(ctx, sealer.KeyID())
	switch {
	case err != nil && state.IsUnavailable(err):
		log.Warn("could not check the cluster key against the fleet (etcd unreachable)", "err", err)
	case err != nil:
		return nil, err
	case fleet != sealer.KeyID():
		return nil, fmt.Errorf("wrong cluster key: this fleet's secrets are sealed with key %s, and this node's secrets.key is key %s; give every node of the fleet the same secrets.key (the first node keeps it in its <dataDir>/secrets.key)", fleet, sealer.KeyID())
	}
	return sealer, nil
}

// clusterKey returns secrets.key, or the node's own key file, generating it.
func clusterKey(cfg config.Config) (string, error) {
	if cfg.Secrets.Key != "" {
		return cfg.Secrets.Key, nil
	}
	b, err := os.ReadFile(cfg.SecretsKeyPath())
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read cluster key: %w", err)
	}
	key, err := sftls.GenerateKey()
	if err != nil {
		return "", fmt.Errorf("generate cluster key: %w", err)
	}
	if err := fsutil.WriteFileAtomic(cfg.SecretsKeyPath(), []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store cluster key: %w", err)
	}
	return key, nil
}

// newCredential returns a random credential for this node's requests to
// its peers; it lives as long as the process (and its lease).
func newCredential() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("node credential: %w", err)
	}
	return "sfn_" + base64.RawURLEncoding.EncodeToString(raw), nil
}
