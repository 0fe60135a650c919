package cluster_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
)

// BenchmarkConvergence measures, on three node processes sharing this
// machine, the time from an API write returning to every node serving
// it, for site adds (through the three nodes in turn), deploys and
// rollbacks, and counts the nginx reloads they caused. It also measures
// how long after the last node served a deployment "deploy --wait"
// answered.
func BenchmarkConvergence(b *testing.B) {
	for b.Loop() {
		f := newFleet(b)
		ctx := context.Background()
		reloads := func() int64 {
			var sum int64
			for i := range f.nodes {
				st, err := f.client(i).Status(ctx)
				if err != nil {
					b.Fatal(err)
				}
				sum += st.Nginx.Reloads
			}
			return sum
		}
		// Site adds.
		before := reloads()
		var adds []time.Duration
		for i := range 60 {
			host := fmt.Sprintf("conv%03d.test", i)
			addSite(b, f.client(i%3), host)
			adds = append(adds, f.allServe(b, func(n *node) error { return n.serves(host) }))
		}
		b.ReportMetric(float64(reloads()-before), "add-reloads")
		report(b, adds, "add-ms")

		// Deploys and rollbacks of one site between two versions.
		addSite(b, f.client(0), "dep.test")
		for _, v := range []string{"1", "2"} {
			if _, err := f.client(0).UploadBundle(ctx, "web", v, bytes.NewReader(bundle(b, v)), "", ""); err != nil {
				b.Fatal(err)
			}
		}
		body := func(v string) string { return "<p>bundle " + v + "</p>\n" }
		if _, err := f.client(0).Deploy(ctx, "dep.test", "web", "1", 30*time.Second, client.Precondition{}); err != nil {
			b.Fatal(err)
		}
		before = reloads()
		var deploys, rollbacks, waitLag []time.Duration
		for i := range 30 { // from 1: deploy 2, roll back to 1
			c := f.client(i % 3)
			if _, err := c.Deploy(ctx, "dep.test", "web", "2", 0, client.Precondition{}); err != nil {
				b.Fatal(err)
			}
			deploys = append(deploys, f.allServe(b, func(n *node) error { return n.servesBody("dep.test", body("2")) }))
			if _, err := c.Rollback(ctx, "dep.test", 0, client.Precondition{}); err != nil {
				b.Fatal(err)
			}
			rollbacks = append(rollbacks, f.allServe(b, func(n *node) error { return n.servesBody("dep.test", body("1")) }))
		}
		b.ReportMetric(float64(reloads()-before), "deploy+rollback-reloads")
		report(b, deploys, "deploy-ms")
		report(b, rollbacks, "rollback-ms")

		// deploy --wait: when it answers, against when the last node served.
		for i := range 20 {
			v := []string{"2", "1"}[i%2]
			lastServed := make(chan time.Time, 1)
			go func() { lastServed <- f.lastServedAt(body(v)) }()
			if _, err := f.client(i%3).Deploy(ctx, "dep.test", "web", v, 30*time.Second, client.Precondition{}); err != nil {
				b.Fatal(err)
			}
			answered := time.Now()
			waitLag = append(waitLag, answered.Sub(<-lastServed))
		}
		report(b, waitLag, "wait-after-last-serving-ms")
	}
}

// allServe polls every node every millisecond until check passes for all
// of them and returns how long that took.
func (f *fleet) allServe(b *testing.B, check func(*node) error) time.Duration {
	start := time.Now()
	for _, n := range f.nodes {
		for check(n) != nil {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s: not served after 30s: %v", n.name, check(n))
			}
			time.Sleep(time.Millisecond)
		}
	}
	return time.Since(start)
}

// lastServedAt polls every node every millisecond until each serves body
// for dep.test and returns when the last one first did.
func (f *fleet) lastServedAt(body string) time.Time {
	var last time.Time
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range f.nodes {
		for n.servesBody("dep.test", body) != nil && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		last = time.Now()
	}
	return last
}

// BenchmarkLeaderFailover kills the leader (SIGKILL) three times, and stops
// it cleanly (SIGTERM) three times, and reports how long the fleet was
// without a leader each time. With SIGKILL that is bounded by the lease
// TTL; a clean stop resigns at once.
func BenchmarkLeaderFailover(b *testing.B) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		b.Run(sig.String(), func(b *testing.B) {
			for b.Loop() {
				f := newFleet(b)
				var lat []time.Duration
				for range 3 {
					li, err := leaderIndex(f, 0)
					if err != nil {
						b.Fatal(err)
					}
					dead := f.nodes[li]
					other := (li + 1) % 3
					dead.p.stop(sig, 20*time.Second)
					start := time.Now()
					f.eventually("new leader", 30*time.Second, func() error {
						cs, err := f.client(other).Cluster(context.Background())
						if err != nil {
							return err
						}
						if cs.Leader == "" || cs.Leader == dead.name {
							return fmt.Errorf("leader %q", cs.Leader)
						}
						return nil
					})
					lat = append(lat, time.Since(start))
					f.startNode(dead)
				}
				report(b, lat, "ms")
				b.ReportMetric(leaseTTL.Seconds()*1000, "ttl-ms")
			}
		})
	}
}

func report(b *testing.B, lat []time.Duration, unit string) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-"+unit)
	b.ReportMetric(ms(lat[int(0.99*float64(len(lat)-1))]), "p99-"+unit)
	b.ReportMetric(ms(lat[len(lat)-1]), "max-"+unit)
	b.ReportMetric(0, "ns/op")
}

// BenchmarkUploadAndDeploy uploads a 50 MB bundle of 5,000 files through
// node1 (answering once two nodes hold it) and deploys it with --wait
// (answering once all three serve it), beside a plain copy of the same
// bytes over loopback into a file.
func BenchmarkUploadAndDeploy(b *testing.B) {
	archive := bigBundle(b, 5000, 10<<10)
	for b.Loop() {
		f := newFleet(b)
		addSite(b, f.client(0), "big.test")
		copyTook := plainCopy(b, archive)
		start := time.Now()
		sum := sha256.Sum256(archive)
		if _, err := f.client(0).UploadBundle(context.Background(), "big", "1", bytes.NewReader(archive), hex.EncodeToString(sum[:]), ""); err != nil {
			b.Fatal(err)
		}
		uploaded := time.Since(start)
		res, err := f.client(1).Deploy(context.Background(), "big.test", "big", "1", 2*time.Minute, client.Precondition{})
		if err != nil || res.Wait == nil || !res.Wait.Done {
			b.Fatalf("deploy: %+v %v", res.Wait, err)
		}
		total := time.Since(start)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(float64(len(archive))/(1<<20), "MiB")
		b.ReportMetric(ms(copyTook), "plain-copy-ms")
		b.ReportMetric(ms(uploaded), "upload-2-replicas-ms")
		b.ReportMetric(ms(total), "upload+deploy-3-nodes-ms")
		b.ReportMetric(ms(total)/ms(copyTook), "ratio-to-copy")
		b.ReportMetric(0, "ns/op")
	}
}

// bigBundle is a tar.gz of files random (incompressible) files of size bytes.
func bigBundle(b *testing.B, files, size int) []byte {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	data := make([]byte, size)
	for i := range files {
		_, _ = crand.Read(data)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%02d/f%05d.bin", i%50, i), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	idx := "<p>big</p>\n"
	_ = tw.WriteHeader(&tar.Header{Name: "index.html", Mode: 0o644, Size: int64(len(idx)), Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte(idx))
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// plainCopy sends data over a loopback TCP connection into a file and
// returns how long it took, including the fsync.
func plainCopy(b *testing.B, data []byte) time.Duration {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	out := filepath.Join(b.TempDir(), "copy")
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		f, err := os.Create(out)
		if err != nil {
			done <- err
			return
		}
		if _, err := io.Copy(f, c); err != nil {
			done <- err
			return
		}
		if err := f.Sync(); err != nil {
			done <- err
			return
		}
		done <- f.Close()
	}()
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		b.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
