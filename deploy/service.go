package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/sitefleet/sitefleet/state"
	"golang.org/x/sync/errgroup"
)

// Records is what the bundle service needs of the bundle records.
type Records interface {
	// PutBundle records a bundle; created is false when the same content
	// was recorded before.
	PutBundle(ctx context.Context, b state.Bundle) (rec state.Bundle, created bool, err error)
	// ListBundles lists the records of app ("" for every app).
	ListBundles(ctx context.Context, app string) ([]state.Bundle, error)
}

// Holders records which nodes hold a bundle's bytes.
type Holders interface {
	AddHolder(ctx context.Context, sha, node string) error
	RemoveHolder(ctx context.Context, sha, node string) error
	Holders(ctx context.Context, sha string) ([]string, error)
}

// Fleet lists the live nodes.
type Fleet interface {
	LiveNodes(ctx context.Context) ([]Peer, error)
}

// Peer is a live node: its name and the address of its API.
type Peer struct{ Name, APIAddress string }

// Policy is what a fleet requires of an upload.
type Policy struct {
	// RequireSignature refuses unsigned bundles; PublicKeys verify signed
	// ones (see Verify).
	RequireSignature bool
	PublicKeys       []string
	// MinReplicas is how many live nodes must hold a bundle before its
	// upload answers; 0 is 2 when two or more nodes are live, else 1.
	MinReplicas int
	// ReplicationTimeout bounds that wait.
	ReplicationTimeout time.Duration
}

// Service takes bundle uploads and moves bundles between nodes: it ties
// this node's Store to the bundle records and to the fleet.
type Service struct {
	Local   *Store
	Records Records
	Holders Holders
	Fleet   Fleet
	// Node is this node's name.
	Node   string
	Policy Policy
	// CheckTree refuses an unpacked bundle the web server could not serve
	// (its _redirects and _headers); nil checks nothing.
	CheckTree func(root string) error
	// Peers reaches other nodes' APIs.
	Peers PeerAPI
}

// PeerAPI reaches another node's API, at apiURL.
type PeerAPI interface {
	// FetchObject streams object sha.
	FetchObject(ctx context.Context, apiURL, sha string, w io.Writer) error
	// FetchObjects asks for objects shas and hands the stream of their
	// frames (see ReadObjectFrames) to read.
	FetchObjects(ctx context.Context, apiURL string, shas []string, read func(io.Reader) error) error
	// FetchArchive streams the archive of a bundle stored before releases
	// were trees.
	FetchArchive(ctx context.Context, apiURL, sha string, w io.Writer) error
}

// Upload is one bundle upload.
type Upload struct {
	App, Version string
	Body         io.Reader
	// SHA256 is the hash the client expects, if it sent one.
	SHA256 string
	// Signature is the client's Ed25519 signature over the hash, if any.
	Signature string
}

// Uploaded is the outcome of an upload.
type Uploaded struct {
	Bundle state.Bundle
	// Created is false when the same content was uploaded before.
	Created bool
	// Holders are the live nodes that held the bundle when Upload returned.
	Holders []string
}

// Upload ingests an archive, checks the signature policy and the tree,
// files it as objects and a release (see TreeOf), records the bundle under
// its tree digest and waits until enough live nodes hold it. Refusals are
// *state.Error values that say what is wrong.
func (s *Service) Upload(ctx context.Context, req Upload) (Uploaded, error) {
	if req.SHA256 != "" {
		if err := state.ValidateSHA256(req.SHA256); err != nil {
			return Uploaded{}, err
		}
		if _, err := s.checkSignature(req.SHA256, req.Signature); err != nil {
			return Uploaded{}, err // refused before reading a byte
		}
	}
	info, err := s.Local.Ingest(ctx, req.Body, req.SHA256)
	if err != nil {
		return Uploaded{}, ingestError(err)
	}
	defer s.dropUnused(ctx, info.SHA256) // the release below holds the files
	signer, err := s.checkSignature(info.SHA256, req.Signature)
	if err == nil {
		err = s.checkTree(info.SHA256)
	}
	if err != nil {
		return Uploaded{}, err
	}
	tree, err := s.Local.TreeOf(ctx, info.SHA256)
	if err != nil {
		return Uploaded{}, fmt.Errorf("ingest bundle: %w", err)
	}
	rel, err := s.Local.Materialize(ctx, tree)
	if err != nil {
		return Uploaded{}, ingestError(err)
	}
	return s.record(ctx, state.Bundle{
		App: req.App, Version: req.Version, SHA256: tree, Size: info.Size, Files: rel.Files,
		Unpacked: rel.Unpacked, Format: info.Format, Signer: signer,
	})
}

// record records an uploaded release, announces that this node holds it
// and waits for its replicas. A release the record refuses is removed
// unless another record uses it.
func (s *Service) record(ctx context.Context, b state.Bundle) (Uploaded, error) {
	b.UploadedAt, b.UploadedTo = time.Now().UTC(), s.Node
	rec, created, err := s.Records.PutBundle(ctx, b)
	if err != nil {
		s.dropUnused(ctx, b.SHA256)
		return Uploaded{}, err
	}
	if err := s.Announce(ctx, b.SHA256); err != nil {
		return Uploaded{}, err
	}
	holders, err := s.waitReplicas(ctx, b.SHA256)
	if err != nil {
		return Uploaded{}, err
	}
	return Uploaded{Bundle: rec, Created: created, Holders: holders}, nil
}

// checkTree runs CheckTree on the files of bundle sha.
func (s *Service) checkTree(sha string) error {
	if s.CheckTree == nil {
		return nil
	}
	if err := s.CheckTree(s.Local.Root(sha)); err != nil {
		return &state.Error{Code: state.Invalid, Message: "bundle manifest refused: " + err.Error(), Err: err}
	}
	return nil
}

// checkSignature verifies sig when given, and refuses a missing one when
// signatures are required. It returns the signing key's ID.
func (s *Service) checkSignature(sha, sig string) (string, error) {
	if sig == "" {
		if s.Policy.RequireSignature {
			return "", state.Errorf(state.Invalid, "this fleet requires signed bundles (bundles.requireSignature): send X-Sitefleet-Signature, e.g. `sitefleet app upload --sign KEYFILE`")
		}
		return "", nil
	}
	if len(s.Policy.PublicKeys) == 0 {
		return "", state.Errorf(state.Invalid, "the bundle is signed but no bundles.publicKeys are configured to verify it")
	}
	id, err := Verify(s.Policy.PublicKeys, sha, sig)
	if err != nil {
		return "", state.Errorf(state.Invalid, "bundle signature refused: %v", err)
	}
	return id, nil
}

// dropUnused removes a freshly ingested bundle that no record refers to.
func (s *Service) dropUnused(ctx context.Context, sha string) {
	if bs, err := s.Records.ListBundles(ctx, ""); err == nil {
		for _, x := range bs {
			if x.SHA256 == sha {
				return
			}
		}
		_ = s.Local.Remove(sha)
	}
}

// ingestError turns the store's typed errors into client errors.
func ingestError(err error) error {
	var le *LimitError
	var ee *EntryError
	var fe *FormatError
	var he *HashMismatchError
	var te *TreeError
	var me *MissingObjectsError
	switch {
	case errors.As(err, &le) && le.What == LimitArchiveSize:
		return &state.Error{Code: state.TooLarge, Message: le.Error(), Err: err}
	case errors.As(err, &le), errors.As(err, &ee), errors.As(err, &fe), errors.As(err, &he), errors.As(err, &te):
		return &state.Error{Code: state.Invalid, Message: err.Error(), Err: err}
	case errors.As(err, &me):
		return &state.Error{Code: state.Invalid, Message: me.Error() + ": send them, then commit again", Err: err}
	}
	return fmt.Errorf("ingest bundle: %w", err)
}

// minReplicas is the configured minimum, or 2 when two or more nodes are
// live and 1 otherwise.
func (s *Service) minReplicas(live int) int {
	if s.Policy.MinReplicas > 0 {
		return min(s.Policy.MinReplicas, max(live, 1))
	}
	if live >= 2 {
		return 2
	}
	return 1
}

// replicaPoll is how often an upload looks for the holders it waits for.
const replicaPoll = 20 * time.Millisecond

// waitReplicas waits until minReplicas live nodes hold sha, or answers
// Unavailable at Policy.ReplicationTimeout.
func (s *Service) waitReplicas(ctx context.Context, sha string) ([]string, error) {
	deadline := time.Now().Add(s.Policy.ReplicationTimeout)
	for {
		holders, live, err := s.liveHolders(ctx, sha)
		if err != nil {
			return nil, err
		}
		need := s.minReplicas(live)
		if len(holders) >= need {
			return holders, nil
		}
		if time.Now().After(deadline) {
			return nil, state.Errorf(state.Unavailable, "the bundle is stored but held by %d of the %d live nodes required within %s; it keeps replicating, and uploading it again is safe",
				len(holders), need, s.Policy.ReplicationTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(replicaPoll):
		}
	}
}

// liveHolders returns the live nodes that hold sha and the number of live
// nodes.
func (s *Service) liveHolders(ctx context.Context, sha string) ([]string, int, error) {
	names, err := s.Holders.Holders(ctx, sha)
	if err != nil {
		return nil, 0, err
	}
	peers, err := s.Fleet.LiveNodes(ctx)
	if err != nil {
		return nil, 0, err
	}
	live := map[string]bool{}
	for _, p := range peers {
		live[p.Name] = true
	}
	var out []string
	for _, n := range names {
		if live[n] || n == s.Node {
			out = append(out, n)
		}
	}
	return out, max(len(live), 1), nil
}

// Open serves the archive to a peer.
func (s *Service) Open(sha string) (io.ReadCloser, int64, error) { return s.Local.Open(sha) }

// Announce records that this node holds sha.
func (s *Service) Announce(ctx context.Context, sha string) error {
	return s.Holders.AddHolder(ctx, sha, s.Node)
}

// Withdraw records that this node no longer holds sha.
func (s *Service) Withdraw(ctx context.Context, sha string) error {
	return s.Holders.RemoveHolder(ctx, sha, s.Node)
}

// Fetch copies release sha from a live node that holds it, trying holders
// in a random order: its tree, then in batches only the objects this node
// lacks, each verified against its digest, then the release is built
// locally. A bundle stored before releases were trees comes as its
// archive, unpacked as safely as an upload.
func (s *Service) Fetch(ctx context.Context, sha string) error {
	names, err := s.Holders.Holders(ctx, sha)
	if err != nil {
		return err
	}
	peers, err := s.Fleet.LiveNodes(ctx)
	if err != nil {
		return err
	}
	addr := map[string]string{}
	for _, p := range peers {
		if p.Name != s.Node && p.APIAddress != "" {
			addr[p.Name] = p.APIAddress
		}
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	var errs []error
	for _, name := range names {
		if addr[name] == "" {
			continue
		}
		if err := s.fetchFrom(ctx, addr[name], sha); err != nil {
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

// A fetch asks a peer for fetchBatch objects per request, fetchParallel
// requests at a time; each request's objects are flushed to disk once.
const (
	fetchBatch    = 1000
	fetchParallel = 4
)

func (s *Service) fetchFrom(ctx context.Context, apiURL, sha string) error {
	if !s.Local.HasObject(sha) {
		err := s.pipe(ctx, func(ctx context.Context, w io.Writer) error { return s.Peers.FetchObject(ctx, apiURL, sha, w) },
			func(r io.Reader) error {
				_, err := s.Local.PutTree(ctx, r, sha)
				return err
			})
		if errors.Is(err, ErrNotFound) {
			return s.fetchArchive(ctx, apiURL, sha)
		}
		if err != nil {
			return err
		}
	}
	_, err := s.Local.MaterializeFetching(ctx, sha, func(missing []string) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(fetchParallel)
		for i := 0; i < len(missing); i += fetchBatch {
			batch := missing[i:min(i+fetchBatch, len(missing))]
			g.Go(func() error { return s.fetchObjects(gctx, apiURL, batch) })
		}
		return g.Wait()
	})
	return err
}

// fetchObjects stores shas from the peer at apiURL, verified, and makes
// them durable.
func (s *Service) fetchObjects(ctx context.Context, apiURL string, shas []string) error {
	want := make(map[string]bool, len(shas))
	for _, sha := range shas {
		want[sha] = true
	}
	batch := s.Local.NewBatch()
	defer batch.Discard()
	err := s.Peers.FetchObjects(ctx, apiURL, shas, func(body io.Reader) error {
		_, err := ReadObjectFrames(body, func(sha string, size int64, r io.Reader) error {
			if !want[sha] {
				return fmt.Errorf("the peer sent object %s, which was not asked for", sha)
			}
			return batch.Put(ctx, r, sha, size)
		})
		return err
	})
	if err != nil {
		return err
	}
	return batch.Commit()
}

// fetchArchive copies an archive-era bundle.
func (s *Service) fetchArchive(ctx context.Context, apiURL, sha string) error {
	return s.pipe(ctx, func(ctx context.Context, w io.Writer) error { return s.Peers.FetchArchive(ctx, apiURL, sha, w) },
		func(r io.Reader) error {
			_, err := s.Local.Ingest(ctx, r, sha)
			return err
		})
}

// pipe runs send, writing into a pipe, and receive, reading from it, and
// returns the first error.
func (s *Service) pipe(ctx context.Context, send func(context.Context, io.Writer) error, receive func(io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	sent := make(chan error, 1)
	go func() {
		err := send(ctx, pw)
		pw.CloseWithError(err)
		sent <- err
	}()
	err := receive(pr)
	pr.CloseWithError(err)
	cancel()
	if serr := <-sent; serr != nil && (err == nil || errors.Is(serr, ErrNotFound)) {
		return serr
	}
	return err
}

// TreeUpload is the answer to a tree sent ahead of a release upload.
type TreeUpload struct {
	Tree string
	// Missing are the objects this node lacks, each once.
	Missing []string
	Files   int
	Bytes   int64
}

// PutTree stores the tree of a release to upload, which must encode
// canonically with digest tree (when given), and returns the objects this
// node still lacks: the client sends only those (PutObjects), then Commit.
func (s *Service) PutTree(ctx context.Context, r io.Reader, tree string) (TreeUpload, error) {
	if tree != "" {
		// Stored as it arrives, verified against its digest.
		if err := state.ValidateSHA256(tree); err != nil {
			return TreeUpload{}, err
		}
		return s.putTree(ctx, &treeLimit{r: r}, tree)
	}
	f, err := os.CreateTemp(s.Local.tmp, "tree-*")
	if err != nil {
		return TreeUpload{}, fmt.Errorf("receive tree: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, maxTreeBytes+1))
	if err != nil {
		return TreeUpload{}, fmt.Errorf("receive tree: %w", err)
	}
	if n > maxTreeBytes {
		return TreeUpload{}, state.Errorf(state.TooLarge, "the tree is larger than %d bytes", maxTreeBytes)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if tree != "" && tree != digest {
		return TreeUpload{}, state.Errorf(state.Invalid, "the tree's SHA-256 is %s, not %s", digest, tree)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return TreeUpload{}, fmt.Errorf("receive tree: %w", err)
	}
	return s.putTree(ctx, f, digest)
}

// putTree stores tree from r and answers with the objects it lacks.
func (s *Service) putTree(ctx context.Context, r io.Reader, tree string) (TreeUpload, error) {
	sum, err := s.Local.PutTree(ctx, r, tree)
	if errors.Is(err, errTreeTooLarge) {
		return TreeUpload{}, state.Errorf(state.TooLarge, "the tree is larger than %d bytes", maxTreeBytes)
	}
	if err != nil {
		return TreeUpload{}, ingestError(err)
	}
	missing, err := s.Local.MissingObjects(ctx, tree)
	if err != nil {
		return TreeUpload{}, ingestError(err)
	}
	return TreeUpload{Tree: tree, Missing: missing, Files: sum.Files, Bytes: sum.Bytes}, nil
}

var errTreeTooLarge = errors.New("the tree is too large")

// treeLimit reads at most maxTreeBytes, then fails with errTreeTooLarge.
type treeLimit struct {
	r io.Reader
	n int64
}

func (t *treeLimit) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if t.n += int64(n); t.n > maxTreeBytes {
		return n, errTreeTooLarge
	}
	return n, err
}

// PutObjects stores the objects of a stream of frames, each verified
// against its digest, makes them durable and returns how many it read.
//
// One request carries at most the store's MaxArchiveBytes of objects (the
// CLI sends 8 MiB): more is a TooLarge error, and nothing of it is kept.
func (s *Service) PutObjects(ctx context.Context, r io.Reader) (int, error) {
	batch := s.Local.NewBatch()
	defer batch.Discard()
	limit := s.Local.Limits().MaxArchiveBytes
	var total int64
	n, err := ReadObjectFrames(r, func(sha string, size int64, body io.Reader) error {
		if total += size; total > limit {
			return &LimitError{What: LimitArchiveSize, Limit: limit}
		}
		return batch.Put(ctx, body, sha, size)
	})
	if err != nil {
		return n, ingestError(err)
	}
	return n, batch.Commit()
}

// Commit is the last step of a release upload: app@version is the tree
// sent before, whose objects are all stored.
type Commit struct {
	App, Version, Tree string
	// Signature signs ReleaseDigest(App, Version, Tree), if the client
	// signed.
	Signature string
}

// Commit builds the release from its objects, checks the signature policy
// and the files, records the bundle under the tree digest and waits until
// enough live nodes hold it. Objects still missing are an Invalid error
// that says how many.
func (s *Service) Commit(ctx context.Context, c Commit) (Uploaded, error) {
	if err := state.ValidateSHA256(c.Tree); err != nil {
		return Uploaded{}, err
	}
	signer, err := s.checkSignature(ReleaseDigest(c.App, c.Version, c.Tree), c.Signature)
	if err != nil {
		return Uploaded{}, err
	}
	if !s.Local.HasObject(c.Tree) {
		return Uploaded{}, state.Errorf(state.Invalid, "tree %s is not stored on this node: send it first (PUT /v1/apps/%s/%s/tree)", c.Tree, c.App, c.Version)
	}
	rel, err := s.Local.Materialize(ctx, c.Tree)
	if err != nil {
		return Uploaded{}, ingestError(err)
	}
	if err := s.checkTree(c.Tree); err != nil {
		s.dropUnused(ctx, c.Tree)
		return Uploaded{}, err
	}
	return s.record(ctx, state.Bundle{
		App: c.App, Version: c.Version, SHA256: c.Tree, Files: rel.Files, Unpacked: rel.Unpacked, Format: FormatTree, Signer: signer,
	})
}

// WriteObjects writes the frames of objects shas to w, for a peer. It
// checks that every one is present before it writes anything: an absent
// one is an error matching ErrNotFound.
func (s *Service) WriteObjects(w io.Writer, shas []string) error {
	for _, sha := range shas {
		if !s.Local.HasObject(sha) {
			return fmt.Errorf("object %.70q: %w", sha, ErrNotFound)
		}
	}
	for _, sha := range shas {
		r, size, err := s.Local.OpenObject(sha)
		if err != nil {
			return err
		}
		err = WriteObjectFrame(w, sha, size, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// OpenObject serves one object to a peer.
func (s *Service) OpenObject(sha string) (io.ReadCloser, int64, error) {
	return s.Local.OpenObject(sha)
}

// maxTreeBytes bounds a tree's encoding: about a million files.
const maxTreeBytes = 128 << 20
