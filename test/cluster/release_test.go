package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/cli"
	"github.com/sitefleet/sitefleet/internal/testutil"
)

// releases lists the releases a node's bundle store holds.
func releases(t *testing.T, n *node) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.dir, "bundles"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func runUpload(ctx context.Context, f *fleet, i int, dir, app, version string, out io.Writer) error {
	cmd := cli.NewRoot(out, out)
	cmd.SetArgs([]string{"--server", "http://" + f.nodes[i].api, "--token", f.nodes[i].token, "app", "upload", dir, "--app", app, "--version", version})
	return cmd.ExecuteContext(ctx)
}

// TestKillUploadingNode kills the node that takes a directory upload in
// the middle of its objects: no record of the release appears, no node
// holds a release of it, the restarted node kept no half-written object,
// and uploading again through another node works.
func TestKillUploadingNode(t *testing.T) {
	f := newFleet(t)
	n1, n2 := f.nodes[0], f.nodes[1]
	dir := filepath.Join(t.TempDir(), "site")
	writeRandomTree(t, dir, 4000, 16<<10)
	ctx := context.Background()

	var progress testutil.LockedBuffer
	done := make(chan error, 1)
	go func() { done <- runUpload(ctx, f, 0, dir, "big", "1", &progress) }()
	f.eventually("the upload is sending objects", 60*time.Second, func() error {
		if m := regexp.MustCompile(`uploading ([1-9][0-9]*)/`).FindStringSubmatch(progress.String()); m == nil {
			return fmt.Errorf("progress %q", progress.String())
		}
		return nil
	})
	f.kill(n1, true)
	if err := <-done; err == nil {
		t.Fatal("the upload to a killed node succeeded")
	}

	if list, err := f.client(1).ListBundles(ctx, "big"); err != nil || len(list.Bundles) != 0 {
		t.Fatalf("bundles of big after its upload died: %+v %v, want none", list.Bundles, err)
	}
	for _, n := range f.nodes[1:] {
		if r := releases(t, n); len(r) != 0 {
			t.Fatalf("%s holds releases %v of an upload that died", n.name, r)
		}
	}
	f.startNode(n1)
	half, _ := filepath.Glob(filepath.Join(n1.dir, "bundles", "objects", "*", ".tmp-*"))
	if r := releases(t, n1); len(r) != 0 || len(half) != 0 {
		t.Fatalf("restarted %s holds releases %v and half-written objects %v", n1.name, r, half)
	}
	if err := runUpload(ctx, f, 1, dir, "big", "1", io.Discard); err != nil {
		t.Fatalf("upload again through %s: %v", n2.name, err)
	}
}

// TestDeploysUnderLoad deploys and rolls back a 5,000-file site 20 times
// while clients read pages of it from every node: every answer is a 200
// holding exactly one version's bytes of that file (a switch never shows
// a page of two versions, or a partial one).
func TestDeploysUnderLoad(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	addSite(t, f.client(0), "load.test")
	base := t.TempDir()
	const versions = 3
	for v := 1; v <= versions; v++ {
		dir := filepath.Join(base, fmt.Sprintf("v%d", v))
		writeVersionTree(t, dir, v, 5000)
		if err := runUpload(ctx, f, (v-1)%3, dir, "load", fmt.Sprint(v), io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.client(0).Deploy(ctx, "load.test", "load", "1", time.Minute, client.Precondition{}); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var requests, bad int
	var problems []string
	report := func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		bad++
		if len(problems) < 10 {
			problems = append(problems, msg)
		}
	}
	versionRE := regexp.MustCompile(`version (\d+)`)
	for c := range 6 {
		n := f.nodes[c%3]
		wg.Go(func() {
			hc := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// The page, one of 5,000 others and the stylesheet: each
				// must be exactly one version's bytes, whole.
				page := (i * 97) % 5000
				for _, p := range []string{"/", fmt.Sprintf("/d%02d/f%05d.html", page%50, page), "/app.css"} {
					req, _ := http.NewRequest(http.MethodGet, "http://"+n.http+p, nil)
					req.Host = "load.test"
					resp, err := hc.Do(req)
					if err != nil {
						report(fmt.Sprintf("%s %s: %v", n.name, p, err))
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					mu.Lock()
					requests++
					mu.Unlock()
					if resp.StatusCode != 200 {
						report(fmt.Sprintf("%s %s: %d", n.name, p, resp.StatusCode))
						continue
					}
					m := versionRE.FindSubmatch(b)
					if m == nil {
						report(fmt.Sprintf("%s %s: no version in %q", n.name, p, b))
						continue
					}
					v := string(m[1])
					want := map[string]string{"/": "<p>version " + v + "</p>\n", "/app.css": "/* version " + v + " */\n"}[p]
					if want == "" {
						want = fmt.Sprintf("<p>page %d, version %s</p>\n", page, v)
					}
					if string(b) != want {
						report(fmt.Sprintf("%s %s: %q is not version %s's", n.name, p, b, v))
					}
				}
			}
		})
	}
	for i := range 20 {
		c := f.client(i % 3)
		var err error
		if i%4 == 3 {
			_, err = c.Rollback(ctx, "load.test", time.Minute, client.Precondition{})
		} else {
			_, err = c.Deploy(ctx, "load.test", "load", fmt.Sprint(i%versions+1), time.Minute, client.Precondition{})
		}
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests during 20 deploys and rollbacks, %d bad", requests, bad)
	if bad != 0 || requests < 100 {
		t.Fatalf("%d of %d requests failed: %s", bad, requests, strings.Join(problems, "; "))
	}
}

// writeVersionTree writes a site of files pages for version v: each page
// and the stylesheet name the version in their bytes.
func writeVersionTree(t *testing.T, dir string, v, files int) {
	t.Helper()
	write := func(p, body string) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", fmt.Sprintf("<p>version %d</p>\n", v))
	write("app.css", fmt.Sprintf("/* version %d */\n", v))
	for i := range files {
		write(fmt.Sprintf("d%02d/f%05d.html", i%50, i), fmt.Sprintf("<p>page %d, version %d</p>\n", i, v))
	}
}
