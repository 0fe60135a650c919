package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// peers is a fixed list of live nodes.
type peers []Peer

func (p peers) LiveNodes(context.Context) ([]Peer, error) { return p, nil }

// newService is a Service named node on a real state store, with its own
// local store.
func newService(t *testing.T, store *state.Store, node string, fleet Fleet) *Service {
	t.Helper()
	local, err := OpenStore(t.TempDir(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return &Service{Local: local, Records: store, Holders: store, Fleet: fleet, Node: node,
		Policy: Policy{ReplicationTimeout: 300 * time.Millisecond}}
}

func newStateStore(t *testing.T) *state.Store {
	t.Helper()
	e := etcdtest.New(t)
	store, err := state.NewStore(state.Options{Client: e.Client(t), Prefix: "/t", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func TestServiceUploadRefusals(t *testing.T) {
	ctx := context.Background()
	store := newStateStore(t)
	svc := newService(t, store, "n1", peers{{Name: "n1"}})
	archive := makeTar(t, tfile("index.html", "hi"), tfile("_redirects", "/a /b 301\n"))
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(priv, sha256Hex(archive))
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("line 1: unsupported")
	for _, tc := range []struct {
		name   string
		setup  func(s *Service)
		req    Upload
		code   state.Code
		substr string
	}{
		{"unsigned where signatures are required", func(s *Service) { s.Policy.RequireSignature = true },
			Upload{Body: bytes.NewReader(archive)}, state.Invalid, "requires signed bundles"},
		{"signed without keys to verify", nil,
			Upload{Body: bytes.NewReader(archive), Signature: sig}, state.Invalid, "no bundles.publicKeys"},
		{"signature of other content", func(s *Service) { s.Policy.PublicKeys = []string{pub} },
			Upload{Body: bytes.NewReader(archive), Signature: strings.Repeat("A", len(sig))}, state.Invalid, "signature refused"},
		{"malformed hash", nil,
			Upload{Body: bytes.NewReader(archive), SHA256: "xyz"}, state.Invalid, "SHA-256"},
		{"hash of other content", nil,
			Upload{Body: bytes.NewReader(archive), SHA256: strings.Repeat("0", 64)}, state.Invalid, ""},
		{"tree the web server refuses", func(s *Service) { s.CheckTree = func(string) error { return refused } },
			Upload{Body: bytes.NewReader(archive)}, state.Invalid, "bundle manifest refused: line 1"},
		{"not an archive", nil,
			Upload{Body: strings.NewReader("plain text")}, state.Invalid, ""},
	} {
		s := *svc
		if tc.setup != nil {
			tc.setup(&s)
		}
		tc.req.App, tc.req.Version = "web", "1"
		_, err := s.Upload(ctx, tc.req)
		if state.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.substr) {
			t.Errorf("%s: %v, want %s naming %q", tc.name, err, tc.code, tc.substr)
		}
		if bs, _ := store.ListBundles(ctx, ""); len(bs) != 0 {
			t.Fatalf("%s: recorded %d bundles", tc.name, len(bs))
		}
		if held, _ := svc.Local.List(); len(held) != 0 {
			t.Fatalf("%s: the node kept %v", tc.name, held)
		}
	}
}

func TestServiceUploadAndFetch(t *testing.T) {
	ctx := context.Background()
	store := newStateStore(t)
	fleet := peers{{Name: "n1", APIAddress: "http://n1"}, {Name: "n2", APIAddress: "http://n2"}}
	n1 := newService(t, store, "n1", fleet)
	n2 := newService(t, store, "n2", fleet)
	archive := makeTar(t, tfile("index.html", "hi"))

	// Two live nodes: the upload waits for a second holder and says so.
	_, err := n1.Upload(ctx, Upload{App: "web", Version: "1", Body: bytes.NewReader(archive)})
	if state.ErrorCode(err) != state.Unavailable || !strings.Contains(err.Error(), "held by 1 of the 2") {
		t.Fatalf("upload with one holder of two: %v", err)
	}
	sha := sha256Hex(archive)
	if !n1.Local.Has(sha) {
		t.Fatal("the recorded bundle left the node that took it")
	}

	// n2 fetches it from n1 (the holder), verified on the way.
	n2.FetchFrom = func(ctx context.Context, apiURL, sha string, w io.Writer) error {
		if apiURL != "http://n1" {
			return errors.New("asked " + apiURL)
		}
		r, _, err := n1.Open(sha)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(w, r)
		return err
	}
	if err := n2.Fetch(ctx, sha); err != nil {
		t.Fatal(err)
	}
	if err := n2.Announce(ctx, sha); err != nil {
		t.Fatal(err)
	}
	res, err := n1.Upload(ctx, Upload{App: "web", Version: "1", Body: bytes.NewReader(archive)})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Holders)
	if res.Created || !slices.Equal(res.Holders, []string{"n1", "n2"}) || res.Bundle.SHA256 != sha {
		t.Fatalf("second upload = %+v, want not created, held by n1 and n2", res)
	}

	// A peer that sends other bytes is refused, and nothing is kept.
	n3 := newService(t, store, "n3", fleet)
	n3.FetchFrom = func(ctx context.Context, apiURL, sha string, w io.Writer) error {
		_, err := w.Write(makeTar(t, tfile("index.html", "evil")))
		return err
	}
	if err := n3.Fetch(ctx, sha); err == nil || n3.Local.Has(sha) {
		t.Fatalf("fetch of other bytes: err=%v, kept=%v", err, n3.Local.Has(sha))
	}
	if err := n2.Withdraw(ctx, sha); err != nil {
		t.Fatal(err)
	}
	if h, _ := store.Holders(ctx, sha); !slices.Equal(h, []string{"n1"}) {
		t.Fatalf("holders after n2 withdrew: %v", h)
	}
}
