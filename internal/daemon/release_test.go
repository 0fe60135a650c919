package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/deploy"
	"github.com/sitefleet/sitefleet/internal/cli"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// objectTap is a reverse proxy in front of a node's API that records the
// objects uploaded through it and the objects peers ask it for, and can
// corrupt the next answer to a peer.
type objectTap struct {
	srv *httptest.Server
	mu  sync.Mutex
	// uploaded holds the digests of each POST /v1/objects, asked those of
	// each POST /v1/objects/fetch.
	uploaded, asked [][]string
	corruptNext     bool
	corrupted       int
}

func newObjectTap(t *testing.T, target string) *objectTap {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	tap := &objectTap{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/v1/objects/fetch" || resp.StatusCode != http.StatusOK {
			return nil
		}
		tap.mu.Lock()
		defer tap.mu.Unlock()
		if !tap.corruptNext {
			return nil
		}
		tap.corruptNext = false
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		b[len(b)-1] ^= 0xff // the last byte of the last object
		tap.corrupted++
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		return nil
	}
	tap.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && (r.URL.Path == "/v1/objects" || r.URL.Path == "/v1/objects/fetch") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			tap.record(r.URL.Path, body)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(tap.srv.Close)
	return tap
}

func (tap *objectTap) record(path string, body []byte) {
	var shas []string
	if path == "/v1/objects" {
		_, _ = deploy.ReadObjectFrames(bytes.NewReader(body), func(sha string, _ int64, _ io.Reader) error {
			shas = append(shas, sha)
			return nil
		})
	} else {
		var req client.FetchRequest
		_ = json.Unmarshal(body, &req)
		shas = req.Objects
	}
	tap.mu.Lock()
	defer tap.mu.Unlock()
	if path == "/v1/objects" {
		tap.uploaded = append(tap.uploaded, shas)
	} else {
		tap.asked = append(tap.asked, shas)
	}
}

// take returns and forgets what was uploaded and asked for, flattened.
func (tap *objectTap) take() (uploaded, asked []string) {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	uploaded, asked = slices.Concat(tap.uploaded...), slices.Concat(tap.asked...)
	tap.uploaded, tap.asked = nil, nil
	slices.Sort(uploaded)
	slices.Sort(asked)
	return uploaded, asked
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUploadByContent runs two nodes; a's API, the one the CLI and peers
// use, is behind a tap. A directory upload sends only the files a lacks,
// b fetches only what it lacks, and an object corrupted on its way to b is
// refused and fetched again.
func TestUploadByContent(t *testing.T) {
	e := etcdtest.New(t)
	cfgA, cfgB := nodeConfig(t, e.Endpoint()), nodeConfig(t, e.Endpoint())
	cfgA.NodeName, cfgB.NodeName = "a", "b"
	tap := newObjectTap(t, "http://"+cfgA.API.Listen)
	cfgA.API.Advertise = tap.srv.URL
	a := startNode(t, cfgA)
	b := startNode(t, cfgB)
	ctx := context.Background()
	if _, err := a.api.PutSite(ctx, state.Site{Domain: "content.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	a.eventually("two live nodes", 10*time.Second, func() error {
		cs, err := a.api.Cluster(ctx)
		if err != nil || len(cs.Nodes) != 2 || !cs.Nodes[0].Live || !cs.Nodes[1].Live {
			return fmt.Errorf("cluster %+v %v", cs.Nodes, err)
		}
		return nil
	})
	upload := func(dir, app, version string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := cli.NewRoot(&out, &out)
		cmd.SetArgs([]string{"--server", tap.srv.URL, "--token", a.waitToken(), "app", "upload", dir, "--app", app, "--version", version})
		if err := cmd.ExecuteContext(ctx); err != nil {
			t.Fatalf("app upload %s as %s@%s: %v\n%s", dir, app, version, err, out.String())
		}
		return out.String()
	}
	deployAndCheck := func(version string, files map[string]string) {
		t.Helper()
		if _, err := a.api.Deploy(ctx, "content.test", "web", version, 10*time.Second, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
		for p, body := range files {
			a.waitBody("content.test", "/"+p, body)
			b.waitBody("content.test", "/"+p, body)
		}
	}
	digests := func(bodies ...string) []string {
		var out []string
		for _, body := range bodies {
			out = append(out, hexSHA([]byte(body)))
		}
		slices.Sort(out)
		return out
	}

	dir := t.TempDir()
	v1 := map[string]string{"index.html": "<p>v1</p>", "assets/app.js": "let v = 1;", "assets/logo.svg": "<svg/>"}
	writeTree(t, dir, v1)
	out := upload(dir, "web", "1")
	if !strings.Contains(out, "uploaded web@1") || !strings.Contains(out, "uploading 3/3 files") {
		t.Fatalf("upload output: %q", out)
	}
	uploaded, asked := tap.take()
	// b fetched from a (the upload waited for a second holder): the tree,
	// then the three files.
	if want := digests("<p>v1</p>", "let v = 1;", "<svg/>"); !slices.Equal(uploaded, want) || !slices.Equal(asked, want) {
		t.Fatalf("first upload sent %v and b asked for %v, want the three files each", uploaded, asked)
	}
	deployAndCheck("1", v1)

	// One file changes: one object goes up, one comes to b.
	v2 := map[string]string{"index.html": "<p>v2</p>", "assets/app.js": "let v = 1;", "assets/logo.svg": "<svg/>"}
	writeTree(t, dir, v2)
	upload(dir, "web", "2")
	if uploaded, asked := tap.take(); !slices.Equal(uploaded, digests("<p>v2</p>")) || !slices.Equal(asked, digests("<p>v2</p>")) {
		t.Fatalf("one changed file: sent %v, b asked for %v; want only index.html", uploaded, asked)
	}
	deployAndCheck("2", v2)

	// Another app with the same files sends nothing and stores nothing twice.
	upload(dir, "docs", "1")
	if uploaded, asked := tap.take(); len(uploaded) != 0 || len(asked) != 0 {
		t.Fatalf("an app sharing every file sent %v, b asked for %v", uploaded, asked)
	}
	docs, err := a.api.ListBundles(ctx, "docs")
	if err != nil || len(docs.Bundles) != 1 {
		t.Fatalf("docs bundles: %+v %v", docs, err)
	}
	web := sameInode(t, filepath.Join(cfgA.DataDir, "bundles", docs.Bundles[0].SHA256, "assets", "app.js"))
	for _, ver := range []string{"1", "2"} {
		rec, err := a.api.ListBundles(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(rec.Bundles, func(b state.Bundle) bool { return b.Version == ver })
		if got := sameInode(t, filepath.Join(cfgA.DataDir, "bundles", rec.Bundles[i].SHA256, "assets", "app.js")); got != web {
			t.Fatalf("web@%s and docs@1 hold assets/app.js as different files", ver)
		}
	}

	// The next object b fetches arrives corrupted: b refuses it, asks
	// again and serves the right bytes.
	tap.mu.Lock()
	tap.corruptNext = true
	tap.mu.Unlock()
	v3 := map[string]string{"index.html": "<p>v2</p>", "assets/app.js": "let v = 3;", "assets/logo.svg": "<svg/>"}
	writeTree(t, dir, v3)
	upload(dir, "web", "3")
	if _, asked := tap.take(); tap.corrupted != 1 || !slices.Equal(asked, digests("let v = 3;", "let v = 3;")) {
		t.Fatalf("corrupted %d answers; b asked for %v, want app.js twice (once refused)", tap.corrupted, asked)
	}
	deployAndCheck("3", v3)
}

func sameInode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestContentUploadRefusals sends the upload-by-content endpoints what a
// broken or hostile client would: each gets a 4xx naming what is wrong,
// and no bundle is recorded.
func TestContentUploadRefusals(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	good := hexSHA([]byte("x"))
	tree := "sitefleet-tree 1\n" + good + " 1 644 index.html\n"
	many := make([]string, 10001)
	for i := range many {
		many[i] = good
	}
	manyJSON, _ := json.Marshal(client.FetchRequest{Objects: many})
	sha := func(v string) http.Header { return http.Header{"X-Sitefleet-Sha256": {v}} }
	for _, tc := range []struct {
		method, path, body string
		hdr                http.Header
		status             int
		detail             string
	}{
		{"PUT", "/v1/apps/web/1/tree", tree, sha("xyz"), 422, "SHA-256"},
		{"PUT", "/v1/apps/web/1/tree", tree, sha(strings.Repeat("0", 64)), 422, ""},
		{"PUT", "/v1/apps/web/1/tree", "not a tree\n", nil, 422, "first line"},
		{"PUT", "/v1/apps/web/1/tree", "sitefleet-tree 1\n" + good + " 1 644 ../etc/passwd\n", nil, 422, ".."},
		{"PUT", "/v1/apps/Web;/1/tree", tree, nil, 422, "app name"},
		{"POST", "/v1/objects", "garbage\n", nil, 422, "frame header"},
		{"POST", "/v1/objects", good + " 1\ny", nil, 422, ""},
		{"POST", "/v1/objects", good + " 99999999999999\nx", nil, 413, ""},
		{"POST", "/v1/objects/fetch", `{"objects":[]}`, nil, 422, "give 1 to"},
		{"POST", "/v1/objects/fetch", `{"objects":["../x"]}`, nil, 422, "objects[0]"},
		{"POST", "/v1/objects/fetch", string(manyJSON), nil, 422, "give 1 to"},
		{"POST", "/v1/objects/fetch", `{"objects":["` + good + `"],"more":1}`, nil, 400, ""},
		{"POST", "/v1/objects/fetch", `{"objects":["` + good + `"]}`, nil, 404, ""},
		{"GET", "/v1/objects/..%2Fx", "", nil, 422, ""},
		{"GET", "/v1/objects/" + good, "", nil, 404, ""},
		{"POST", "/v1/apps/web/1/commit", `{"tree":"zz"}`, nil, 422, "SHA-256"},
		{"POST", "/v1/apps/web/1/commit", `{"tree":"` + good + `"}`, nil, 422, "not stored"},
		{"POST", "/v1/apps/web/1/commit", `not json`, nil, 400, ""},
	} {
		code, p := n.rawRequest(t, tc.method, tc.path, tc.body, tc.hdr)
		if code != tc.status || !strings.Contains(p.Detail, tc.detail) {
			t.Errorf("%s %s %.40q: %d %q, want %d naming %q", tc.method, tc.path, tc.body, code, p.Detail, tc.status, tc.detail)
		}
	}
	if list, err := n.api.ListBundles(ctx, ""); err != nil || len(list.Bundles) != 0 {
		t.Fatalf("bundles after refused uploads: %+v %v", list.Bundles, err)
	}
}
