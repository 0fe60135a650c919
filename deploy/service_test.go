package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
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

// servicePeers reaches in-process services by their API address; corrupt,
// when set, changes the bytes a peer sends.
type servicePeers struct {
	by      map[string]*Service
	corrupt func(b []byte) []byte
	asked   [][]string
}

func (p *servicePeers) FetchObject(ctx context.Context, apiURL, sha string, w io.Writer) error {
	r, _, err := p.by[apiURL].OpenObject(sha)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}

func (p *servicePeers) FetchObjects(ctx context.Context, apiURL string, shas []string, read func(io.Reader) error) error {
	p.asked = append(p.asked, shas)
	var b bytes.Buffer
	if err := p.by[apiURL].WriteObjects(&b, shas); err != nil {
		return err
	}
	out := b.Bytes()
	if p.corrupt != nil {
		out = p.corrupt(out)
	}
	return read(bytes.NewReader(out))
}

func (p *servicePeers) FetchArchive(ctx context.Context, apiURL, sha string, w io.Writer) error {
	r, _, err := p.by[apiURL].Open(sha)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}

func TestServiceUploadAndFetch(t *testing.T) {
	ctx := context.Background()
	store := newStateStore(t)
	fleet := peers{{Name: "n1", APIAddress: "http://n1"}, {Name: "n2", APIAddress: "http://n2"}}
	n1 := newService(t, store, "n1", fleet)
	n2 := newService(t, store, "n2", fleet)
	via := &servicePeers{by: map[string]*Service{"http://n1": n1, "http://n2": n2}}
	n1.Peers, n2.Peers = via, via
	archive := makeTar(t, tfile("index.html", "hi"), tfile("a.css", "body{}"))

	// Two live nodes: the upload waits for a second holder and says so.
	_, err := n1.Upload(ctx, Upload{App: "web", Version: "1", Body: bytes.NewReader(archive)})
	if state.ErrorCode(err) != state.Unavailable || !strings.Contains(err.Error(), "held by 1 of the 2") {
		t.Fatalf("upload with one holder of two: %v", err)
	}
	recs, _ := store.ListBundles(ctx, "web")
	if len(recs) != 1 {
		t.Fatalf("records: %v", recs)
	}
	tree := recs[0].SHA256
	if !n1.Local.Has(tree) || n1.Local.Has(sha256Hex(archive)) {
		t.Fatal("the node that took the upload holds the archive, not the release")
	}

	// n2 fetches the tree and the objects from n1 (the holder).
	if err := n2.Fetch(ctx, tree); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(n2.Local.Root(tree), "a.css")); string(b) != "body{}" {
		t.Fatalf("fetched a.css = %q", b)
	}
	if len(via.asked) != 1 || len(via.asked[0]) != 2 {
		t.Fatalf("asked for %v, want the two objects in one batch", via.asked)
	}
	if err := n2.Announce(ctx, tree); err != nil {
		t.Fatal(err)
	}
	res, err := n1.Upload(ctx, Upload{App: "web", Version: "1", Body: bytes.NewReader(archive)})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Holders)
	if res.Created || !slices.Equal(res.Holders, []string{"n1", "n2"}) || res.Bundle.SHA256 != tree {
		t.Fatalf("second upload = %+v, want not created, held by n1 and n2", res)
	}

	// A node that holds one of the files fetches only the other.
	n3 := newService(t, store, "n3", fleet)
	n3.Peers = via
	if err := n3.Local.PutObject(ctx, strings.NewReader("hi"), digestOf("hi"), 2); err != nil {
		t.Fatal(err)
	}
	via.asked = nil
	// A peer that sends other bytes is refused, and nothing is kept.
	via.corrupt = func(b []byte) []byte { return bytes.Replace(b, []byte("body{}"), []byte("evil{}"), 1) }
	if err := n3.Fetch(ctx, tree); err == nil || n3.Local.Has(tree) || n3.Local.HasObject(digestOf("body{}")) {
		t.Fatalf("fetch of other bytes: err=%v", err)
	}
	via.corrupt = func(b []byte) []byte { return b[:len(b)-2] } // truncated
	if err := n3.Fetch(ctx, tree); err == nil || n3.Local.Has(tree) {
		t.Fatalf("fetch of a truncated object: err=%v", err)
	}
	via.corrupt = nil
	if err := n3.Fetch(ctx, tree); err != nil {
		t.Fatal(err)
	}
	for _, batch := range via.asked {
		if !slices.Equal(batch, []string{digestOf("body{}")}) {
			t.Fatalf("n3 asked for %v, want only the object it lacked", batch)
		}
	}
	if err := n2.Withdraw(ctx, tree); err != nil {
		t.Fatal(err)
	}
	if h, _ := store.Holders(ctx, tree); !slices.Equal(h, []string{"n1"}) {
		t.Fatalf("holders after n2 withdrew: %v", h)
	}
}

// frames encodes files as a stream of object frames.
func frames(t *testing.T, bodies ...string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	for _, body := range bodies {
		if err := WriteObjectFrame(&b, digestOf(body), int64(len(body)), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

func treeOf(t *testing.T, files map[string]string) ([]byte, string) {
	t.Helper()
	enc, digest, err := EncodeTree(entriesOf(files))
	if err != nil {
		t.Fatal(err)
	}
	return enc, digest
}

func TestServiceReleaseUpload(t *testing.T) {
	ctx := context.Background()
	store := newStateStore(t)
	svc := newService(t, store, "n1", peers{{Name: "n1"}})
	pub, priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	svc.Policy.RequireSignature, svc.Policy.PublicKeys = true, []string{pub}
	sign := func(app, version, tree string) string {
		sig, err := Sign(priv, ReleaseDigest(app, version, tree))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	v1 := map[string]string{"index.html": "v1", "app.js": "shared", "logo.svg": "<svg/>"}
	enc, tree := treeOf(t, v1)

	if _, err := svc.PutTree(ctx, bytes.NewReader(enc), strings.Repeat("0", 64)); state.ErrorCode(err) != state.Invalid {
		t.Fatalf("tree with another digest: %v", err)
	}
	if _, err := svc.PutTree(ctx, strings.NewReader("sitefleet-tree 1\n"+digestOf("x")+" 1 644 ../x\n"), ""); state.ErrorCode(err) != state.Invalid || !strings.Contains(err.Error(), "..") {
		t.Fatalf("tree with ../x: %v", err)
	}
	up, err := svc.PutTree(ctx, bytes.NewReader(enc), tree)
	if err != nil {
		t.Fatal(err)
	}
	if up.Tree != tree || len(up.Missing) != 3 || up.Files != 3 {
		t.Fatalf("tree upload = %+v", up)
	}
	c := Commit{App: "web", Version: "1", Tree: tree, Signature: sign("web", "1", tree)}
	if _, err := svc.Commit(ctx, c); state.ErrorCode(err) != state.Invalid || !strings.Contains(err.Error(), "3 objects") {
		t.Fatalf("commit before the objects: %v", err)
	}
	if n, err := svc.PutObjects(ctx, frames(t, "v1", "shared", "<svg/>")); err != nil || n != 3 {
		t.Fatalf("objects: %d, %v", n, err)
	}
	for _, bad := range []Commit{
		{App: "web", Version: "1", Tree: tree},
		{App: "web", Version: "2", Tree: tree, Signature: c.Signature},
		{App: "other", Version: "1", Tree: tree, Signature: c.Signature},
	} {
		if _, err := svc.Commit(ctx, bad); state.ErrorCode(err) != state.Invalid {
			t.Fatalf("commit %s@%s with signature %q: %v", bad.App, bad.Version, bad.Signature, err)
		}
	}
	res, err := svc.Commit(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Bundle.SHA256 != tree || res.Bundle.Files != 3 || res.Bundle.Signer == "" {
		t.Fatalf("commit = %+v", res)
	}

	// One file changed: one object missing. Another app sharing a file
	// stores it once.
	v2 := map[string]string{"index.html": "v2", "app.js": "shared", "logo.svg": "<svg/>"}
	enc2, tree2 := treeOf(t, v2)
	up2, err := svc.PutTree(ctx, bytes.NewReader(enc2), tree2)
	if err != nil || !slices.Equal(up2.Missing, []string{digestOf("v2")}) {
		t.Fatalf("second release missing %v (%v), want only index.html's object", up2.Missing, err)
	}
	if _, err := svc.PutObjects(ctx, frames(t, "v2")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Commit(ctx, Commit{App: "docs", Version: "1", Tree: tree2, Signature: sign("docs", "1", tree2)}); err != nil {
		t.Fatal(err)
	}
	a := inode(t, filepath.Join(svc.Local.Root(tree), "app.js"))
	if b := inode(t, filepath.Join(svc.Local.Root(tree2), "app.js")); a != b {
		t.Fatal("two apps' shared file is stored twice")
	}
	if _, err := svc.PutObjects(ctx, strings.NewReader(digestOf("x")+" 1\ny"+digestOf("z")+" x\n")); state.ErrorCode(err) != state.Invalid {
		t.Fatalf("objects stream with a lying frame: %v", err)
	}
	if svc.Local.HasObject(digestOf("y")) {
		t.Fatal("kept an object whose bytes do not match its digest")
	}
}

func TestServicePutObjectsLimit(t *testing.T) {
	ctx := context.Background()
	store := newStateStore(t)
	local, err := OpenStore(t.TempDir(), Limits{MaxArchiveBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Local: local, Records: store, Holders: store, Fleet: peers{{Name: "n1"}}, Node: "n1"}
	if _, err := svc.PutObjects(ctx, frames(t, "12345", "67890", "abcde")); state.ErrorCode(err) != state.TooLarge {
		t.Fatalf("15 bytes of objects over a limit of 10: %v, want too large", err)
	}
	for _, body := range []string{"12345", "67890", "abcde"} {
		if local.HasObject(digestOf(body)) {
			t.Fatalf("kept %q of a refused request", body)
		}
	}
	if n, err := svc.PutObjects(ctx, frames(t, "12345", "67890")); err != nil || n != 2 {
		t.Fatalf("10 bytes: %d, %v", n, err)
	}
}
