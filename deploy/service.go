package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/sitefleet/sitefleet/state"
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
	// FetchFrom streams bundle sha's archive from the node whose API is at
	// apiURL.
	FetchFrom func(ctx context.Context, apiURL, sha string, w io.Writer) error
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
// records the bundle and waits until enough live nodes hold it. Refusals
// are *state.Error values that say what is wrong.
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
	signer, err := s.checkSignature(info.SHA256, req.Signature)
	if err == nil && s.CheckTree != nil {
		if err = s.CheckTree(s.Local.Root(info.SHA256)); err != nil {
			err = &state.Error{Code: state.Invalid, Message: "bundle manifest refused: " + err.Error(), Err: err}
		}
	}
	if err != nil {
		s.dropUnused(ctx, info.SHA256)
		return Uploaded{}, err
	}
	rec, created, err := s.Records.PutBundle(ctx, state.Bundle{
		App: req.App, Version: req.Version, SHA256: info.SHA256, Size: info.Size, Files: info.Files,
		Unpacked: info.Unpacked, Format: info.Format, Signer: signer, UploadedAt: time.Now().UTC(), UploadedTo: s.Node,
	})
	if err != nil {
		s.dropUnused(ctx, info.SHA256)
		return Uploaded{}, err
	}
	if err := s.Announce(ctx, info.SHA256); err != nil {
		return Uploaded{}, err
	}
	holders, err := s.waitReplicas(ctx, info.SHA256)
	if err != nil {
		return Uploaded{}, err
	}
	return Uploaded{Bundle: rec, Created: created, Holders: holders}, nil
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
	switch {
	case errors.As(err, &le) && le.What == LimitArchiveSize:
		return &state.Error{Code: state.TooLarge, Message: le.Error(), Err: err}
	case errors.As(err, &le), errors.As(err, &ee), errors.As(err, &fe), errors.As(err, &he):
		return &state.Error{Code: state.Invalid, Message: err.Error(), Err: err}
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
		case <-time.After(100 * time.Millisecond):
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

// Fetch copies sha from a live node that holds it, trying holders in a
// random order; the local store verifies the hash while it unpacks.
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

func (s *Service) fetchFrom(ctx context.Context, apiURL, sha string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.FetchFrom(ctx, apiURL, sha, pw)) }()
	_, err := s.Local.Ingest(ctx, pr, sha)
	pr.CloseWithError(err)
	return err
}
