package daemon

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/deploy"
	"github.com/sitefleet/sitefleet/internal/config"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/state"
)

// tarGz builds a .tar.gz of the given files (path -> contents).
func tarGz(t testing.TB, files map[string]string) []byte { return testutil.TarGz(t, files) }

// treeDigest is the digest of the release of files (path -> content), as
// an upload of them by archive or by directory records it.
func treeDigest(t testing.TB, files map[string]string) string {
	t.Helper()
	var entries []deploy.TreeEntry
	for p, body := range files {
		entries = append(entries, deploy.TreeEntry{Path: p, SHA256: hexSHA([]byte(body)), Size: int64(len(body)), Mode: 0o644})
	}
	_, digest, err := deploy.EncodeTree(entries)
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// page is a site version whose every file says which version it is.
func page(version string) map[string]string {
	return map[string]string{
		"index.html":     "<p>version " + version + "</p>\n",
		"about.html":     "<p>about, version " + version + "</p>\n",
		"assets/app.css": "/* version " + version + " */\n",
	}
}

func (n *testNode) upload(t testing.TB, app, version string, archive []byte, sig string) client.UploadResult {
	t.Helper()
	res, err := n.api.UploadBundle(context.Background(), app, version, bytes.NewReader(archive), hexSHA(archive), sig)
	if err != nil {
		t.Fatalf("upload %s@%s: %v", app, version, err)
	}
	return res
}

// waitBody waits until host/path answers 200 with body.
func (n *testNode) waitBody(host, path, body string) {
	n.t.Helper()
	n.waitAnswer(fmt.Sprintf("%s%s serves %q", host, path, body), host, path, 15*time.Second, 200, func(got string) bool { return got == body })
}

func TestUploadDeployRollback(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "app.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	v1, v2 := tarGz(t, page("1")), tarGz(t, page("2"))
	res := n.upload(t, "web", "1", v1, "")
	if !res.Created || res.Bundle.Files != 3 || res.Bundle.SHA256 != treeDigest(t, page("1")) || len(res.Holders) != 1 {
		t.Fatalf("upload result = %+v", res)
	}
	if again := n.upload(t, "web", "1", v1, ""); again.Created {
		t.Fatal("the same content uploaded twice was created twice")
	}
	_, err := n.api.UploadBundle(ctx, "web", "1", bytes.NewReader(v2), "", "")
	if client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("other content under an existing version: %v, want 409", err)
	}
	n.upload(t, "web", "2", v2, "")

	for _, bad := range []struct {
		path, body string
		status     int
	}{
		{"/v1/sites/app.test/deployment?wait=forever", `{"app":"web","version":"1"}`, 400},
		{"/v1/sites/app.test/deployment?wait=1h", `{"app":"web","version":"1"}`, 400},
		{"/v1/sites/app.test/deployment", `{"app":"web","version":"1","force":true}`, 400},
		{"/v1/sites/app.test/deployment", `{"app":"Web;","version":"1"}`, 422},
		{"/v1/sites/app.test/deployment", `{"app":"web","version":"../1"}`, 422},
	} {
		if code, p := n.rawRequest(t, http.MethodPut, bad.path, bad.body, nil); code != bad.status {
			t.Errorf("PUT %s %s: %d (%s), want %d", bad.path, bad.body, code, p.Detail, bad.status)
		}
	}
	if _, err := n.api.Deploy(ctx, "app.test", "web", "9", 0, client.Precondition{}); client.StatusOf(err) != http.StatusNotFound {
		t.Fatalf("deploy of an unknown version: %v, want 404", err)
	}
	d, err := n.api.Deploy(ctx, "app.test", "web", "1", 10*time.Second, client.Precondition{})
	if err != nil || d.Wait == nil || !d.Wait.Done {
		t.Fatalf("deploy --wait: %+v %v", d, err)
	}
	n.waitBody("app.test", "/", "<p>version 1</p>\n")
	n.waitBody("app.test", "/assets/app.css", "/* version 1 */\n")
	if _, err := n.api.Deploy(ctx, "app.test", "web", "2", 10*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitBody("app.test", "/", "<p>version 2</p>\n")
	if err := n.api.DeleteBundle(ctx, "web", "1"); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("removing a bundle kept for rollback: %v, want 409", err)
	}
	rb, err := n.api.Rollback(ctx, "app.test", 10*time.Second, client.Precondition{})
	if err != nil || rb.Site.Deployment.Version != "1" {
		t.Fatalf("rollback: %+v %v", rb, err)
	}
	n.waitBody("app.test", "/", "<p>version 1</p>\n")
	list, err := n.api.ListBundles(ctx, "web")
	if err != nil || len(list.Bundles) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func TestMaliciousUploadsChangeNothing(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.Bundles.MaxUnpackedBytes = 1 << 20
	cfg.Bundles.MaxArchiveBytes = 2 << 20
	n := startNode(t, cfg)
	ctx := context.Background()
	escape := func() []byte {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		_ = tw.WriteHeader(&tar.Header{Name: "../../etc/cron.d/x", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("x"))
		_ = tw.Close()
		_ = gz.Close()
		return buf.Bytes()
	}()
	symlink := func() []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "link", Linkname: "/etc", Typeflag: tar.TypeSymlink})
		_ = tw.WriteHeader(&tar.Header{Name: "link/passwd", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("x"))
		_ = tw.Close()
		return buf.Bytes()
	}()
	bomb := tarGz(t, map[string]string{"zeros": strings.Repeat("\x00", 4<<20)})
	good := tarGz(t, page("1"))
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 0xff
	cases := []struct {
		name   string
		body   []byte
		sha    string
		status int
		want   string
	}{
		{"path escape", escape, "", 422, "../../etc/cron.d/x"},
		{"symlink then write through it", symlink, "", 422, "link"},
		{"decompression bomb", bomb, "", 422, "unpacked size"},
		{"corrupt gzip", corrupt, "", 422, "invalid archive"},
		{"not an archive", []byte("\x89PNG\r\n\x1a\nnot a bundle"), "", 422, "invalid archive"},
		{"hash mismatch", good, strings.Repeat("0", 64), 422, "sha"},
		{"malformed hash header", good, "xyz", 422, "SHA-256"},
		{"archive over the size limit", bytes.Repeat([]byte("x"), 3<<20), "", 413, "archive size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.api.UploadBundle(ctx, "evil", "1", bytes.NewReader(tc.body), tc.sha, "")
			if client.StatusOf(err) != tc.status || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
				t.Fatalf("upload: %v, want %d mentioning %q", err, tc.status, tc.want)
			}
		})
	}
	for _, bad := range []string{"/v1/apps/Evil/1", "/v1/apps/evil/..%2F1", "/v1/apps/evil/a%20b"} {
		if code, _ := n.rawRequest(t, http.MethodPut, bad, "x", nil); code != 422 && code != 404 {
			t.Errorf("PUT %s: %d, want 422", bad, code)
		}
	}
	list, err := n.api.ListBundles(ctx, "")
	if err != nil || len(list.Bundles) != 0 {
		t.Fatalf("refused uploads left records: %+v %v", list.Bundles, err)
	}
	entries, err := os.ReadDir(filepath.Join(cfg.DataDir, "bundles"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "tmp" {
			t.Errorf("refused uploads left %s in the bundle store", e.Name())
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(cfg.DataDir, "bundles", "tmp")); len(tmp) != 0 {
		t.Errorf("refused uploads left temporary files: %v", tmp)
	}
	if _, err := os.Stat("/etc/cron.d/x"); err == nil {
		t.Fatal("an archive wrote outside the store")
	}
}

func TestSignatures(t *testing.T) {
	pub, priv, err := deploy.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, _ := deploy.GenerateKey()
	archive := tarGz(t, page("signed"))
	sum := hexSHA(archive)
	good, _ := deploy.Sign(priv, sum)
	bad, _ := deploy.Sign(otherPriv, sum)
	for _, require := range []bool{false, true} {
		t.Run(fmt.Sprintf("requireSignature=%t", require), func(t *testing.T) {
			e := etcdtest.New(t)
			cfg := nodeConfig(t, e.Endpoint())
			cfg.Bundles.PublicKeys, cfg.Bundles.RequireSignature = []string{pub}, require
			n := startNode(t, cfg)
			ctx := context.Background()
			_, err := n.api.UploadBundle(ctx, "web", "bad", bytes.NewReader(archive), sum, bad)
			if client.StatusOf(err) != 422 || !strings.Contains(err.Error(), "signature") {
				t.Fatalf("badly signed: %v, want 422", err)
			}
			_, err = n.api.UploadBundle(ctx, "web", "unsigned", bytes.NewReader(archive), sum, "")
			if require && client.StatusOf(err) != 422 {
				t.Fatalf("unsigned with requireSignature: %v, want 422", err)
			}
			if !require && err != nil {
				t.Fatalf("unsigned without requireSignature: %v", err)
			}
			res := n.upload(t, "web", "good", archive, good)
			if id, _ := deploy.KeyID(pub); res.Bundle.Signer != id {
				t.Fatalf("signer = %q, want %q", res.Bundle.Signer, id)
			}
		})
	}
}

// TestDeploysUnderLoad deploys and rolls back 20 times while clients
// request the site without pause: no request may fail, and every answer
// must be wholly one version's file (never a partial or mixed body).
func TestDeploysUnderLoad(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "load.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.upload(t, "web", "a", tarGz(t, page("a")), "")
	n.upload(t, "web", "b", tarGz(t, page("b")), "")
	if _, err := n.api.Deploy(ctx, "load.test", "web", "a", 10*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitBody("load.test", "/", "<p>version a</p>\n")

	stop := make(chan struct{})
	var requests, failures atomic.Int64
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, path := range []string{"/", "/about.html", "/assets/app.css"} {
					code, body, _, err := n.get("load.test", path)
					requests.Add(1)
					ok := err == nil && code == 200 && (strings.Contains(body, "version a") || strings.Contains(body, "version b"))
					if !ok {
						failures.Add(1)
						mu.Lock()
						bad = append(bad, fmt.Sprintf("%s: %d %q %v", path, code, body, err))
						mu.Unlock()
					}
				}
			}
		})
	}
	for i := range 20 {
		var err error
		if i%2 == 0 {
			_, err = n.api.Deploy(ctx, "load.test", "web", "b", 10*time.Second, client.Precondition{})
		} else {
			_, err = n.api.Rollback(ctx, "load.test", 10*time.Second, client.Precondition{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests during 20 deploys and rollbacks, %d failed", requests.Load(), failures.Load())
	if failures.Load() != 0 {
		t.Fatalf("%d requests failed, e.g. %v", failures.Load(), bad[:min(5, len(bad))])
	}
}

// TestBundleReplication uploads to node a, which answers once b holds the
// bundle too; a dies right away; b serves the deployment, and a new node c
// fetches the bundle from b.
func TestBundleReplication(t *testing.T) {
	e := etcdtest.New(t)
	nodes := map[string]config.Config{}
	for _, name := range []string{"a", "b", "c"} {
		cfg := nodeConfig(t, e.Endpoint())
		cfg.NodeName, cfg.State.Etcd.KeyPrefix = name, "/replication"
		nodes[name] = cfg
	}
	a := startNode(t, nodes["a"])
	b := startNode(t, nodes["b"])
	ctx := context.Background()
	b.eventually("two live nodes", 10*time.Second, func() error {
		cs, err := b.api.Cluster(ctx)
		if err != nil || len(cs.Nodes) != 2 {
			return fmt.Errorf("%+v %v", cs.Nodes, err)
		}
		return nil
	})
	if _, err := a.api.PutSite(ctx, state.Site{Domain: "rep.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	archive := tarGz(t, page("replicated"))
	res := a.upload(t, "web", "1", archive, "")
	sort.Strings(res.Holders)
	if strings.Join(res.Holders, ",") != "a,b" {
		t.Fatalf("the upload answered with holders %v, want a and b", res.Holders)
	}
	a.stop()

	if _, err := b.api.Deploy(ctx, "rep.test", "web", "1", 10*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	b.waitBody("rep.test", "/", "<p>version replicated</p>\n")

	c := startNode(t, nodes["c"])
	c.waitBody("rep.test", "/", "<p>version replicated</p>\n")
	c.waitBody("rep.test", "/assets/app.css", "/* version replicated */\n")
}

func TestBundleGarbageCollection(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.Bundles.KeepVersions, cfg.Bundles.GCInterval = 1, 50*time.Millisecond
	n := startNode(t, cfg)
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "gc.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.eventually("the node leads", 10*time.Second, func() error { return expectLeader(n, true) })
	// Pause the collector's effect by deploying before uploading the rest:
	// 1 is deployed then replaced (kept for rollback), 2 is deployed,
	// 3 is unused and older than 4, the newest.
	n.upload(t, "web", "1", tarGz(t, page("1")), "")
	if _, err := n.api.Deploy(ctx, "gc.test", "web", "1", 0, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.upload(t, "web", "2", tarGz(t, page("2")), "")
	if _, err := n.api.Deploy(ctx, "gc.test", "web", "2", 0, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.upload(t, "web", "3", tarGz(t, page("3")), "")
	n.upload(t, "web", "4", tarGz(t, page("4")), "")
	n.eventually("web@3 is collected, the others kept", 10*time.Second, func() error {
		list, err := n.api.ListBundles(ctx, "web")
		if err != nil {
			return err
		}
		var versions []string
		for _, b := range list.Bundles {
			versions = append(versions, b.Version)
		}
		if got := strings.Join(versions, ","); got != "1,2,4" {
			return fmt.Errorf("versions %s", got)
		}
		return nil
	})
	n.waitBody("gc.test", "/", "<p>version 2</p>\n")
}

// TestServingFeatures checks, through nginx, what every deployed site gets:
// clean URLs, its own 404.html, precompressed files, revalidation by
// default, and optionally redirects from .html.
func TestServingFeatures(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "feat.test", Options: state.SiteOptions{RedirectHTML: true}}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "plain.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	var gzCSS bytes.Buffer
	zw := gzip.NewWriter(&gzCSS)
	_, _ = zw.Write([]byte("/* compressed */\n"))
	_ = zw.Close()
	files := map[string]string{
		"index.html":        "home\n",
		"about.html":        "about\n",
		"docs/index.html":   "docs\n",
		"404.html":          "custom not found\n",
		"assets/app.css":    "/* plain */\n",
		"assets/app.css.gz": gzCSS.String(),
		"assets/app.js":     "// plain\n",
		"assets/app.js.br":  "brotli bytes (served as they are)",
	}
	n.upload(t, "feat", "1", tarGz(t, files), "")
	for _, d := range []string{"feat.test", "plain.test"} {
		if _, err := n.api.Deploy(ctx, d, "feat", "1", 10*time.Second, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	n.waitBody("feat.test", "/", "home\n")

	check := func(host, path string, wantCode int, wantBody, wantLocation string) {
		t.Helper()
		code, body, hdr, err := n.get(host, path)
		if err != nil {
			t.Fatal(err)
		}
		if code != wantCode || (wantBody != "" && body != wantBody) || hdr.Get("Location") != wantLocation {
			t.Errorf("%s%s = %d %q Location %q; want %d %q %q", host, path, code, body, hdr.Get("Location"), wantCode, wantBody, wantLocation)
		}
	}
	check("plain.test", "/about", 200, "about\n", "")
	check("plain.test", "/about.html", 200, "about\n", "")
	check("plain.test", "/docs/", 200, "docs\n", "")
	check("plain.test", "/missing", 404, "custom not found\n", "")
	check("feat.test", "/about.html", 301, "", "/about")
	check("feat.test", "/docs/index.html", 301, "", "/docs/")
	check("feat.test", "/about", 200, "about\n", "")

	_, _, hdr, _ := n.get("plain.test", "/")
	if got := hdr.Get("Cache-Control"); got != "public, max-age=0, must-revalidate" {
		t.Errorf("Cache-Control = %q", got)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.cfg.Web.HTTPListen+"/assets/app.css", nil)
	req.Host = "plain.test"
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("precompressed css: Content-Encoding %q Content-Type %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"))
	}
	if _, err := os.Stat("/usr/lib/nginx/modules/ngx_http_brotli_static_module.so"); err != nil {
		t.Log("brotli_static module not installed (libnginx-mod-http-brotli-static): .br files are not checked")
		return
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+n.cfg.Web.HTTPListen+"/assets/app.js", nil)
	req.Host = "plain.test"
	req.Header.Set("Accept-Encoding", "br, gzip")
	resp, err = (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "br" {
		t.Errorf("precompressed js: Content-Encoding %q, want br", resp.Header.Get("Content-Encoding"))
	}
}
