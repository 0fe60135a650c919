package state

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	appRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidateApp checks an app name: 1-63 lower-case letters, digits and
// inner hyphens.
func ValidateApp(app string) error {
	if !appRE.MatchString(app) {
		return Errorf(Invalid, "app name %q: use 1 to 63 lower-case letters, digits and inner hyphens", app)
	}
	return nil
}

// ValidateVersion checks a version: 1-64 letters, digits, ".", "_", "+"
// and "-", starting with a letter or digit.
func ValidateVersion(v string) error {
	if !versionRE.MatchString(v) {
		return Errorf(Invalid, "version %q: use 1 to 64 letters, digits, '.', '_', '+' and '-', starting with a letter or digit", v)
	}
	return nil
}

// ValidateSHA256 checks a lower-case hex SHA-256 digest.
func ValidateSHA256(h string) error {
	if !sha256RE.MatchString(h) {
		return Errorf(Invalid, "%q is not a lower-case hex SHA-256 digest", h)
	}
	return nil
}

// ValidateBundle checks a bundle's identity fields.
func ValidateBundle(b Bundle) error {
	if err := ValidateApp(b.App); err != nil {
		return err
	}
	if err := ValidateVersion(b.Version); err != nil {
		return err
	}
	return ValidateSHA256(b.SHA256)
}

// Apps is the prefix of the bundle keys; Bundle the key of one version.
func (k Keys) Apps() string                      { return k.Prefix + "/state/apps/" }
func (k Keys) Bundle(app, version string) string { return k.Apps() + app + "/" + version }

// Holders is the prefix of the keys recording which nodes hold a bundle's
// bytes: <prefix>/bundles/<sha256>/<node>.
func (k Keys) Holders(sha string) string { return k.Prefix + "/bundles/" + sha + "/" }

// AllHolders is the prefix of every bundle's holder keys.
func (k Keys) AllHolders() string { return k.Prefix + "/bundles/" }

func decodeBundle(kv *mvccpb.KeyValue) (Bundle, error) {
	var b Bundle
	if err := json.Unmarshal(kv.Value, &b); err != nil {
		return Bundle{}, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	b.Revision = kv.ModRevision
	return b, nil
}

// PutBundle records an uploaded bundle. A version is immutable: recording
// the same app and version with the same SHA-256 again changes nothing and
// returns the stored bundle with created false; with another SHA-256 it is
// an Exists *Error.
func (s *Store) PutBundle(ctx context.Context, b Bundle) (Bundle, bool, error) {
	if err := ValidateBundle(b); err != nil {
		return Bundle{}, false, err
	}
	b.Revision = 0
	val, err := marshal(b)
	if err != nil {
		return Bundle{}, false, err
	}
	key := s.keys.Bundle(b.App, b.Version)
	m, err := s.touchMeta()
	if err != nil {
		return Bundle{}, false, err
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val), m).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return Bundle{}, false, s.wrap(ctx, "record bundle", err)
	}
	if resp.Succeeded {
		b.Revision = resp.Header.Revision
		return b, true, nil
	}
	old, err := decodeBundle(resp.Responses[0].GetResponseRange().Kvs[0])
	if err != nil {
		return Bundle{}, false, err
	}
	if old.SHA256 != b.SHA256 {
		return Bundle{}, false, Errorf(Exists, "%s exists with other content (sha256 %s); versions are immutable: upload under a new version", b.Ref(), old.SHA256)
	}
	return old, false, nil
}

// GetBundle reads one bundle; a missing one is a NotFound *Error.
func (s *Store) GetBundle(ctx context.Context, app, version string) (Bundle, error) {
	if err := ValidateApp(app); err != nil {
		return Bundle{}, err
	}
	if err := ValidateVersion(version); err != nil {
		return Bundle{}, err
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Bundle(app, version))
	if err != nil {
		return Bundle{}, s.wrap(ctx, "read bundle", err)
	}
	if len(resp.Kvs) == 0 {
		return Bundle{}, Errorf(NotFound, "%s@%s has not been uploaded", app, version)
	}
	return decodeBundle(resp.Kvs[0])
}

// ListBundles returns every bundle, or those of one app, sorted by app and
// upload time.
func (s *Store) ListBundles(ctx context.Context, app string) ([]Bundle, error) {
	prefix := s.keys.Apps()
	if app != "" {
		if err := ValidateApp(app); err != nil {
			return nil, err
		}
		prefix += app + "/"
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, s.wrap(ctx, "list bundles", err)
	}
	out := make([]Bundle, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		b, err := decodeBundle(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sortBundles(out)
	return out, nil
}

func sortBundles(bs []Bundle) {
	slices.SortFunc(bs, func(a, b Bundle) int {
		if c := strings.Compare(a.App, b.App); c != 0 {
			return c
		}
		if c := a.UploadedAt.Compare(b.UploadedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Version, b.Version)
	})
}

// DeleteBundle removes a bundle's record. A bundle that a site serves or
// keeps in its history is refused with an InUse *Error naming the site.
// guard is a leader's fence (garbage collection; see commitFenced).
func (s *Store) DeleteBundle(ctx context.Context, app, version string, guard ...Guard) error {
	if err := ValidateApp(app); err != nil {
		return err
	}
	if err := ValidateVersion(version); err != nil {
		return err
	}
	key := s.keys.Bundle(app, version)
	for range maxRetries {
		scan, err := s.scanSites(ctx, key)
		if err != nil {
			return err
		}
		if scan.obj == nil {
			return Errorf(NotFound, "%s@%s has not been uploaded", app, version)
		}
		b, err := decodeBundle(scan.obj)
		if err != nil {
			return err
		}
		if site, ok := UsedBy(scan.sites, b.SHA256); ok {
			return &Error{Code: InUse, Message: fmt.Sprintf("%s is used by site %q (deployed, kept for rollback or previewed)", b.Ref(), site)}
		}
		if ok, err := s.deleteGuarded(ctx, "delete bundle", key, scan, guard); err != nil || ok {
			return err
		}
	}
	return Errorf(Conflict, "the state is changing too fast to delete %s@%s: retry", app, version)
}

// UsedBy returns a site that deploys the bundle with the given hash or
// keeps it for rollback.
func UsedBy(sites []Site, sha string) (string, bool) {
	for _, s := range sites {
		if s.Deployment != nil && s.Deployment.SHA256 == sha {
			return s.Domain, true
		}
		for _, h := range s.History {
			if h.SHA256 == sha {
				return s.Domain, true
			}
		}
		for _, p := range s.Previews {
			if p.Deployment.SHA256 == sha {
				return s.Domain, true
			}
		}
	}
	return "", false
}

// AddHolder records that node holds the bytes of the bundle sha.
func (s *Store) AddHolder(ctx context.Context, sha, node string) error {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Put(rctx, s.keys.Holders(sha)+node, time.Now().UTC().Format(time.RFC3339))
	return s.wrap(ctx, "record bundle holder", err)
}

// RemoveHolder records that node no longer holds the bundle sha.
func (s *Store) RemoveHolder(ctx context.Context, sha, node string) error {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Delete(rctx, s.keys.Holders(sha)+node)
	return s.wrap(ctx, "remove bundle holder", err)
}

// Holders returns the names of the nodes that hold the bundle sha.
func (s *Store) Holders(ctx context.Context, sha string) ([]string, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Holders(sha), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, s.wrap(ctx, "read bundle holders", err)
	}
	out := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, strings.TrimPrefix(string(kv.Key), s.keys.Holders(sha)))
	}
	return out, nil
}

// RemoveOrphanHolders deletes, under guard, the holder records of every
// bundle whose digest is not in live (a node that is gone cannot withdraw
// its own). Each delete holds only while the state is still at stateRev,
// the revision live was read at: a bundle recorded since keeps its holders.
func (s *Store) RemoveOrphanHolders(ctx context.Context, live map[string]bool, stateRev int64, guard Guard) error {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	prefix := s.keys.AllHolders()
	resp, err := s.cli.Get(rctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return s.wrap(ctx, "list bundle holders", err)
	}
	gone := map[string]bool{}
	for _, kv := range resp.Kvs {
		sha, _, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
		if !live[sha] {
			gone[sha] = true
		}
	}
	unchanged := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.keys.Meta()), "=", stateRev)}
	for _, sha := range sortedKeys(gone) {
		del := []clientv3.Op{clientv3.OpDelete(s.keys.Holders(sha), clientv3.WithPrefix())}
		if _, _, err := s.fencedTxn(ctx, "remove holders of "+sha, []Guard{guard}, unchanged, del); err != nil {
			return err
		}
	}
	return nil
}
