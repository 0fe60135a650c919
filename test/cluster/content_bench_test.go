package cluster_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/cli"
)

// BenchmarkDeployByContent uploads a directory with `sitefleet app upload`
// (by content) through node1 and deploys it with --wait, all three node
// processes serving, first whole and then with one file changed (three
// times; the median is reported). The
// baseline, in the same run, is `rsync -a` of the same tree to two peer
// directories followed by `sync`. A third case has 100,000 files and
// changes one.
func BenchmarkDeployByContent(b *testing.B) {
	if _, err := exec.LookPath("rsync"); err != nil {
		b.Fatal("rsync is the baseline: apt-get install -y rsync (make bench does)")
	}
	for _, tc := range []struct {
		name  string
		files int
		size  int
	}{{"5000-files-50MB", 5000, 10 << 10}, {"100000-files-100MB", 100000, 1 << 10}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				benchDeployByContent(b, tc.files, tc.size)
			}
		})
	}
}

func benchDeployByContent(b *testing.B, files, size int) {
	f := newFleetWith(b, fleetOptions{extra: func(int) string { return "bundles:\n  maxFiles: 200000\n" }})
	addSite(b, f.client(0), "big.test")
	dir := filepath.Join(b.TempDir(), "site")
	writeRandomTree(b, dir, files, size)
	peers := []string{filepath.Join(b.TempDir(), "peer1"), filepath.Join(b.TempDir(), "peer2")}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

	flushAll(b) // the generated tree is not the measured runs' to write
	rsyncFirst := rsyncTo(b, dir, peers)
	up1, dep1 := uploadAndDeploy(b, f, dir, "1")
	first := up1 + dep1

	// One file changes, three times over; the median is reported.
	var rsyncChanges, changes []time.Duration
	var changeUploads, changeDeploys []time.Duration
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(fmt.Sprintf("<p>big, change %d</p>\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
		flushAll(b)
		rsyncChanges = append(rsyncChanges, rsyncTo(b, dir, peers))
		up, dep := uploadAndDeploy(b, f, dir, fmt.Sprint(i+2))
		changes, changeUploads, changeDeploys = append(changes, up+dep), append(changeUploads, up), append(changeDeploys, dep)
	}
	median := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	rsyncChange, change := median(rsyncChanges), median(changes)

	b.ReportMetric(ms(rsyncFirst), "rsync-first-ms")
	b.ReportMetric(ms(up1), "first-upload-ms")
	b.ReportMetric(ms(dep1), "first-deploy-wait-ms")
	b.ReportMetric(ms(first)/ms(rsyncFirst), "first-ratio-to-rsync")
	b.ReportMetric(ms(rsyncChange), "rsync-change-median-ms")
	b.ReportMetric(ms(median(changeUploads)), "change-upload-median-ms")
	b.ReportMetric(ms(median(changeDeploys)), "change-deploy-wait-median-ms")
	b.ReportMetric(ms(change), "change-total-median-ms")
	b.ReportMetric(ms(slices.Max(changes)), "change-total-max-ms")
	b.ReportMetric(ms(change)/ms(max(rsyncChange, 500*time.Millisecond)), "change-ratio-to-max(rsync,0.5s)")
	b.ReportMetric(0, "ns/op")
}

// uploadAndDeploy runs `sitefleet app upload DIR` against node1 (it
// answers once two nodes hold the release) and then a deploy with --wait
// (it answers once all three serve it); it returns how long each took.
func uploadAndDeploy(b *testing.B, f *fleet, dir, version string) (upload, deploy time.Duration) {
	ctx := context.Background()
	start := time.Now()
	var out bytes.Buffer
	cmd := cli.NewRoot(&out, &out)
	cmd.SetArgs([]string{"--server", "http://" + f.nodes[0].api, "--token", f.nodes[0].token, "app", "upload", dir, "--app", "big", "--version", version, "-q"})
	if err := cmd.ExecuteContext(ctx); err != nil {
		b.Fatalf("upload: %v\n%s", err, out.String())
	}
	upload = time.Since(start)
	start = time.Now()
	res, err := f.client(1).Deploy(ctx, "big.test", "big", version, 5*time.Minute, client.Precondition{})
	if err != nil || res.Wait == nil || !res.Wait.Done {
		b.Fatalf("deploy: %+v %v", res.Wait, err)
	}
	deploy = time.Since(start)
	for _, n := range f.nodes {
		if code, body, err := n.get("big.test"); err != nil || code != 200 || !strings.HasPrefix(body, "<p>big") {
			b.Fatalf("%s serves %d %q %v", n.name, code, body, err)
		}
	}
	return upload, deploy
}

// writeRandomTree writes files random (incompressible) files of size
// bytes under dir, 100 per directory, and an index.html.
func writeRandomTree(b testing.TB, dir string, files, size int) {
	data := make([]byte, size)
	for i := range files {
		sub := filepath.Join(dir, fmt.Sprintf("d%04d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		_, _ = crand.Read(data)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%06d.bin", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>big</p>\n"), 0o644); err != nil {
		b.Fatal(err)
	}
}

func flushAll(b *testing.B) {
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		b.Fatalf("sync: %v\n%s", err, out)
	}
}

// rsyncTo copies dir to each peer directory with rsync -a, then syncs, and
// returns how long it took: Aegir's Web Cluster way of deploying.
func rsyncTo(b *testing.B, dir string, peers []string) time.Duration {
	start := time.Now()
	for _, p := range peers {
		if out, err := exec.Command("rsync", "-a", dir+"/", p+"/").CombinedOutput(); err != nil {
			b.Fatalf("rsync: %v\n%s", err, out)
		}
	}
	flushAll(b)
	return time.Since(start)
}
