package state

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxTxnBytes keeps each import transaction well under etcd's default
// request size limit of 1.5 MiB.
const maxTxnBytes = 1 << 20

// Export returns the whole state as a Document at one revision.
func (s *Store) Export(ctx context.Context) (Document, error) {
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return Document{}, err
	}
	sites := make([]Site, len(snap.Sites))
	for i, site := range snap.Sites {
		site.Revision = 0
		sites[i] = site
	}
	certs := make([]Certificate, len(snap.Certificates))
	for i, c := range snap.Certificates {
		c.Revision = 0
		certs[i] = c
	}
	return Document{Revision: snap.Revision, Sites: sites, Certificates: certs}, nil
}

// storedState is the raw state under the prefix, as an import diffs it.
type storedState struct {
	metaRev int64
	pending bool
	sites   map[string]Site
	// unreadable holds the domains whose record does not decode: the
	// import replaces or removes them whatever the document says.
	unreadable map[string]bool
	names      map[string]string
	bundles    map[string]string // app@version -> sha256
	certs      map[string]Certificate
}

// checkDeployments refuses sites whose deployment or history names a
// bundle that was not uploaded, or was uploaded with other content: nodes
// could never serve it.
func (st storedState) checkDeployments(sites []Site) error {
	for i, site := range sites {
		deps := slices.Clone(site.History)
		if site.Deployment != nil {
			deps = append(deps, *site.Deployment)
		}
		for _, p := range site.Previews {
			deps = append(deps, p.Deployment)
		}
		for _, d := range deps {
			ref := d.App + "@" + d.Version
			switch sha, ok := st.bundles[ref]; {
			case !ok:
				return Errorf(Invalid, "sites[%d] (%s): %s has not been uploaded to this fleet; upload it first", i, site.Domain, ref)
			case sha != d.SHA256:
				return Errorf(Invalid, "sites[%d] (%s): %s in this fleet has sha256 %s, not %s", i, site.Domain, ref, sha, d.SHA256)
			}
		}
	}
	return nil
}

func (s *Store) readStored(ctx context.Context) (storedState, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.keys.State(), clientv3.WithPrefix())
	if err != nil {
		return storedState{}, s.wrap(ctx, "read state", err)
	}
	st := storedState{sites: map[string]Site{}, unreadable: map[string]bool{}, names: map[string]string{}, bundles: map[string]string{}, certs: map[string]Certificate{}}
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		switch {
		case key == s.keys.Meta():
			st.metaRev = kv.ModRevision
		case key == s.keys.Pending():
			st.pending = true
		case strings.HasPrefix(key, s.keys.Sites()):
			domain := strings.TrimPrefix(key, s.keys.Sites())
			site, err := decodeSiteKey(kv, domain)
			if err != nil { // replaced or removed by the import, whatever it holds
				site = Site{Domain: domain, Revision: kv.ModRevision}
				st.unreadable[domain] = true
			}
			st.sites[domain] = site
		case strings.HasPrefix(key, s.keys.Names()):
			st.names[strings.TrimPrefix(key, s.keys.Names())] = string(kv.Value)
		case strings.HasPrefix(key, s.keys.Apps()):
			b, err := decodeBundle(kv)
			if err != nil {
				return storedState{}, err
			}
			st.bundles[b.Ref()] = b.SHA256
		case strings.HasPrefix(key, s.keys.Certs()):
			c, err := decodeCert(kv)
			if err != nil {
				return storedState{}, err
			}
			st.certs[c.ID] = c
		}
	}
	return st, nil
}

// Import replaces the whole state with doc: sites not in doc are removed.
// The document is validated completely before anything is written, and an
// invalid one changes nothing. A non-zero doc.Revision makes the import fail
// with a Conflict *Error when the state changed after that revision. With
// dryRun, Import returns the changes it would make and writes nothing.
//
// An import that fits in one etcd transaction is applied atomically. A
// larger one is written in several transactions under a pending marker:
// nodes do not apply the state while the marker exists, and other writes are
// refused with Busy, so no node ever serves a half-applied import. If the
// importer dies midway the marker stays, and importing again completes it.
func (s *Store) Import(ctx context.Context, doc Document, dryRun bool) (ImportResult, error) {
	sites, err := ValidateSites(doc.Sites)
	if err != nil {
		return ImportResult{}, err
	}
	certs, err := validateCertRecords(doc.Certificates, sites)
	if err != nil {
		return ImportResult{}, err
	}
	st, err := s.readStored(ctx)
	if err != nil {
		return ImportResult{}, err
	}
	if err := st.checkDeployments(sites); err != nil {
		return ImportResult{}, err
	}
	if doc.Revision != 0 && st.metaRev > doc.Revision {
		return ImportResult{}, Errorf(Conflict, "the state changed after revision %d (last change at %d): export it again and retry", doc.Revision, st.metaRev)
	}
	changes, ops, err := s.diff(st, sites)
	if err != nil {
		return ImportResult{}, err
	}
	certChanges, certOps, err := s.diffCerts(st, certs)
	if err != nil {
		return ImportResult{}, err
	}
	changes, ops = append(changes, certChanges...), append(ops, certOps...)
	res := ImportResult{Changes: changes, Revision: st.metaRev, DryRun: dryRun}
	if dryRun || (len(ops) == 0 && !st.pending) {
		return res, nil
	}
	res.Revision, err = s.writeImport(ctx, st.metaRev, ops)
	return res, err
}

// diff returns the changes from st to sites and the etcd operations that
// make them, site keys and name index alike.
func (s *Store) diff(st storedState, sites []Site) ([]Change, []clientv3.Op, error) {
	changes := []Change{}
	var ops []clientv3.Op
	want := map[string]string{}
	seen := map[string]bool{}
	for _, site := range sites {
		seen[site.Domain] = true
		for _, n := range site.Claims() {
			want[n] = site.Domain
		}
		cur, exists := st.sites[site.Domain]
		if exists && !st.unreadable[site.Domain] && cur.Equal(site) {
			continue
		}
		val, err := marshal(site)
		if err != nil {
			return nil, nil, err
		}
		action := "add"
		if exists {
			action = "update"
		}
		changes = append(changes, Change{Action: action, Kind: "site", Name: site.Domain})
		ops = append(ops, clientv3.OpPut(s.keys.Site(site.Domain), val))
	}
	for _, domain := range sortedKeys(st.sites) {
		if !seen[domain] {
			changes = append(changes, Change{Action: "remove", Kind: "site", Name: domain})
			ops = append(ops, clientv3.OpDelete(s.keys.Site(domain)))
		}
	}
	slices.SortFunc(changes, func(a, b Change) int { return cmp.Compare(a.Name, b.Name) })
	for _, n := range sortedKeys(st.names) {
		if _, ok := want[n]; !ok {
			ops = append(ops, clientv3.OpDelete(s.keys.Name(n)))
		}
	}
	for _, n := range sortedKeys(want) {
		if st.names[n] != want[n] {
			ops = append(ops, clientv3.OpPut(s.keys.Name(n), want[n]))
		}
	}
	return changes, ops, nil
}

// validateCertRecords checks the certificate records of a document and
// that every imported certificate a site names is among them and covers
// the site. It returns the records by ID. The records' contents are
// checked further, against the cluster key, above the store.
func validateCertRecords(certs []Certificate, sites []Site) (map[string]Certificate, error) {
	out := make(map[string]Certificate, len(certs))
	for i, c := range certs {
		field := fmt.Sprintf("certificates[%d]", i)
		switch {
		case !c.Type.Valid():
			return nil, Errorf(Invalid, "%s: type %.30q is not one of selfsigned, imported, acme", field, c.Type)
		case c.Type == CertImported:
			if err := ValidateCertID(c.ID); err != nil {
				return nil, withField(field, err)
			}
		default:
			name, ok := strings.CutPrefix(c.ID, string(c.Type)+"-")
			if n, err := NormalizeHostname(name); !ok || err != nil || n != name {
				return nil, Errorf(Invalid, "%s: id %.80q is not %s-<host name in normal form>", field, c.ID, c.Type)
			}
		}
		if c.ChainPEM == "" || c.KeySealed == "" {
			return nil, Errorf(Invalid, "%s (%s): chainPem and keySealed are required", field, c.ID)
		}
		if _, dup := out[c.ID]; dup {
			return nil, Errorf(Invalid, "%s: id %q is listed twice", field, c.ID)
		}
		c.Revision = 0
		out[c.ID] = c
	}
	for i, site := range sites {
		if id := importedCertID(site); id != "" {
			var cert *Certificate
			if c, ok := out[id]; ok {
				cert = &c
			}
			if err := checkImportedCert(site, cert); err != nil {
				return nil, withField(fmt.Sprintf("sites[%d] (%s)", i, site.Domain), err)
			}
		}
	}
	return out, nil
}

// diffCerts returns the changes from the stored certificates to certs and
// the operations that make them.
func (s *Store) diffCerts(st storedState, certs map[string]Certificate) ([]Change, []clientv3.Op, error) {
	var changes []Change
	var ops []clientv3.Op
	for _, id := range sortedKeys(certs) {
		c := certs[id]
		val, err := marshal(c)
		if err != nil {
			return nil, nil, err
		}
		cur, exists := st.certs[id]
		if exists {
			cur.Revision = 0
			if old, err := marshal(cur); err == nil && old == val {
				continue
			}
		}
		action := "add"
		if exists {
			action = "update"
		}
		changes = append(changes, Change{Action: action, Kind: "certificate", Name: id})
		ops = append(ops, clientv3.OpPut(s.keys.Cert(id), val))
	}
	for _, id := range sortedKeys(st.certs) {
		if _, keep := certs[id]; !keep {
			changes = append(changes, Change{Action: "remove", Kind: "certificate", Name: id})
			ops = append(ops, clientv3.OpDelete(s.keys.Cert(id)))
		}
	}
	return changes, ops, nil
}

// writeImport applies ops atomically when they fit in one transaction, and
// under the pending marker otherwise.
func (s *Store) writeImport(ctx context.Context, metaRev int64, ops []clientv3.Op) (int64, error) {
	guard := clientv3.Compare(clientv3.ModRevision(s.keys.Meta()), "=", metaRev)
	stale := Errorf(Conflict, "the state changed while it was being imported: retry")
	if len(ops)+2 <= s.maxOps && opsBytes(ops) <= maxTxnBytes {
		rev, ok, err := s.commit(ctx, "import state", []clientv3.Cmp{guard}, append(ops, clientv3.OpDelete(s.keys.Pending())))
		if err == nil && !ok {
			err = stale
		}
		return rev, err
	}
	id, err := randomID()
	if err != nil {
		return 0, err
	}
	_, ok, err := s.commit(ctx, "begin import", []clientv3.Cmp{guard}, []clientv3.Op{clientv3.OpPut(s.keys.Pending(), id)})
	if err == nil && !ok {
		err = stale
	}
	if err != nil {
		return 0, err
	}
	mine := clientv3.Compare(clientv3.Value(s.keys.Pending()), "=", id)
	takenOver := Errorf(Conflict, "another import took over while this one was being written")
	for _, chunk := range chunkOps(ops, s.maxOps-1, maxTxnBytes) {
		if _, ok, err := s.commit(ctx, "import state", []clientv3.Cmp{mine}, chunk); err != nil || !ok {
			return 0, firstErr(err, takenOver)
		}
	}
	rev, ok, err := s.commit(ctx, "finish import", []clientv3.Cmp{mine}, []clientv3.Op{clientv3.OpDelete(s.keys.Pending())})
	if err == nil && !ok {
		err = takenOver
	}
	return rev, err
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// commitInChunks commits ops, which need not be atomic together, in as
// few unconditional transactions as the server's limits allow.
func (s *Store) commitInChunks(ctx context.Context, what string, ops []clientv3.Op) error {
	for _, chunk := range chunkOps(ops, s.maxOps, maxTxnBytes) {
		rctx, cancel := s.ctx(ctx)
		_, err := s.cli.Txn(rctx).Then(chunk...).Commit()
		cancel()
		if err != nil {
			return s.wrap(ctx, what, err)
		}
	}
	return nil
}

// chunkOps splits ops into groups of at most n operations and about
// maxBytes of keys and values each.
func chunkOps(ops []clientv3.Op, n, maxBytes int) [][]clientv3.Op {
	var out [][]clientv3.Op
	var cur []clientv3.Op
	size := 0
	for _, op := range ops {
		b := len(op.KeyBytes()) + len(op.ValueBytes())
		if len(cur) > 0 && (len(cur) >= n || size+b > maxBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, op)
		size += b
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func opsBytes(ops []clientv3.Op) int {
	n := 0
	for _, op := range ops {
		n += len(op.KeyBytes()) + len(op.ValueBytes())
	}
	return n
}

func randomID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
