package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshot reads the whole desired state at one revision with a
// linearizable read. Its Revision is the state revision: the etcd revision
// of the last change to the desired state (0 if it was never written), which
// other keys of the fleet (node records, leases) do not move. It fails with an Unavailable *Error when etcd cannot be
// reached within the store's timeout. A site record that does not decode,
// or whose domain is not its key's, is not in Sites but in Unreadable with
// the reason, and a bundle, certificate or DH parameters record that does
// not decode is left out and named in BadRecords: one bad record must not
// stop the fleet from applying every other site. Nodes keep serving such a site as they last applied it, and
// whatever removes things for want of a site must count it as present.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	snap, _, err := s.snapshotAt(ctx)
	return snap, err
}

// snapshotAt is Snapshot that also returns the etcd revision of the read.
func (s *Store) snapshotAt(ctx context.Context) (*Snapshot, int64, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	// One read-only transaction: the sites and the pending marker at one
	// revision, without the name index, which nodes do not need.
	resp, err := s.cli.Txn(rctx).Then(
		clientv3.OpGet(s.keys.Sites(), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.Pending()),
		clientv3.OpGet(s.keys.Meta(), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.keys.Apps(), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.Certs(), clientv3.WithPrefix()),
		clientv3.OpGet(s.keys.DHParams()),
	).Commit()
	if err != nil {
		return nil, 0, s.wrap(ctx, "read state", err)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	snap := &Snapshot{Sites: make([]Site, 0, len(kvs))}
	if m := resp.Responses[2].GetResponseRange().Kvs; len(m) > 0 {
		snap.Revision = m[0].ModRevision
	}
	for _, kv := range kvs {
		domain := strings.TrimPrefix(string(kv.Key), s.keys.Sites())
		site, err := decodeSiteKey(kv, domain)
		if err != nil {
			if snap.Unreadable == nil {
				snap.Unreadable = map[string]string{}
			}
			snap.Unreadable[domain] = err.Error()
			continue
		}
		snap.Sites = append(snap.Sites, site)
	}
	if p := resp.Responses[1].GetResponseRange().Kvs; len(p) > 0 {
		snap.PendingImport = string(p[0].Value)
	}
	for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
		b, err := decodeBundle(kv)
		if err != nil {
			snap.badRecord(kv, err)
			continue
		}
		snap.Bundles = append(snap.Bundles, b)
	}
	sortBundles(snap.Bundles)
	for _, kv := range resp.Responses[4].GetResponseRange().Kvs {
		c, err := decodeCert(kv)
		if err != nil {
			snap.badRecord(kv, err)
			continue
		}
		snap.Certificates = append(snap.Certificates, c)
	}
	if kvs := resp.Responses[5].GetResponseRange().Kvs; len(kvs) > 0 {
		if snap.DHParams, err = decodeDHParams(kvs[0]); err != nil {
			snap.badRecord(kvs[0], err)
		}
	}
	return snap, resp.Header.Revision, nil
}

// GetSite reads one site. It returns the site (with Revision set to its
// key's modification revision) and the store revision of the read; a
// missing site is a NotFound *Error.
func (s *Store) GetSite(ctx context.Context, domain string) (Site, int64, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Site(domain))
	if err != nil {
		return Site{}, 0, s.wrap(ctx, "read site", err)
	}
	if len(resp.Kvs) == 0 {
		return Site{}, resp.Header.Revision, Errorf(NotFound, "site %q does not exist", domain)
	}
	site, err := decodeSite(resp.Kvs[0])
	return site, resp.Header.Revision, err
}

// badRecord notes a bundle, certificate or DH parameters record that does
// not decode.
func (s *Snapshot) badRecord(kv *mvccpb.KeyValue, err error) {
	if s.BadRecords == nil {
		s.BadRecords = map[string]string{}
	}
	s.BadRecords[string(kv.Key)] = err.Error()
}

// decodeSiteKey decodes a site record stored under domain's key.
func decodeSiteKey(kv *mvccpb.KeyValue, domain string) (Site, error) {
	site, err := decodeSite(kv)
	if err == nil && site.Domain != domain {
		err = fmt.Errorf("record %s holds site %q, not %q", kv.Key, site.Domain, domain)
	}
	return site, err
}

func decodeSite(kv *mvccpb.KeyValue) (Site, error) {
	var site Site
	if err := json.Unmarshal(kv.Value, &site); err != nil {
		return Site{}, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	site.Revision = kv.ModRevision
	return site, nil
}

// LastChange returns the revision of the latest change to the desired
// state (0 if it was never written), with a linearizable read of one small
// key: a cheap probe of etcd's reachability and of missed changes.
func (s *Store) LastChange(ctx context.Context) (int64, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.Meta(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, s.wrap(ctx, "read last change", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return resp.Kvs[0].ModRevision, nil
}

// WatchChanges reports changes to the desired state from now on. The
// channel receives nil after a change (one value may stand for several
// changes), and an error when the watch fails; it then closes. The watch
// requires an etcd leader, so a member cut from its quorum fails it instead
// of going silent. It closes when ctx ends.
func (s *Store) WatchChanges(ctx context.Context) <-chan error {
	out := make(chan error, 1)
	wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), s.keys.Meta())
	fail := func(err error) {
		select {
		case out <- err:
		case <-ctx.Done():
		}
	}
	go func() {
		defer close(out)
		for resp := range wch {
			if err := resp.Err(); err != nil {
				fail(fmt.Errorf("watch state: %w", err))
				return
			}
			if len(resp.Events) == 0 {
				continue
			}
			select {
			case out <- nil:
			default: // a notice is pending: it covers this change too
			}
		}
		if ctx.Err() == nil {
			fail(errors.New("watch state: the watch closed"))
		}
	}()
	return out
}
