package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/internal/testutil"
	"github.com/sitefleet/sitefleet/state"
)

// BenchmarkWriteToServed measures, over 200 changes, the time from an API
// write returning to nginx serving the change on the same node.
func BenchmarkWriteToServed(b *testing.B) {
	for b.Loop() {
		n := benchNode(b)
		lat := n.changeLatencies(b, 0, 200)
		reportLatencies(b, lat)
	}
}

// BenchmarkPass measures a whole reconcile pass (snapshot, render, nginx
// -t, swap, reload observed, cache written) as the write-to-served time of
// one site changed among 1,000 and 10,000.
func BenchmarkPass(b *testing.B) {
	for _, sites := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			for b.Loop() {
				n := benchNode(b)
				start := time.Now()
				n.importSites(b, sites)
				b.Logf("%d sites imported and served in %s", sites, time.Since(start).Round(time.Millisecond))
				reportLatencies(b, n.changeLatencies(b, sites, 20))
			}
		})
	}
}

func benchNode(b *testing.B) *testNode {
	e := etcdtest.New(b)
	cfg := nodeConfig(b, e.Endpoint())
	cfg.API.MaxBodyBytes = 64 << 20 // whole-state imports of many sites
	return startNode(b, cfg)
}

// importSites replaces the state with n sites and waits until the last is
// served.
func (n *testNode) importSites(b *testing.B, count int) {
	doc := state.Document{}
	for i := range count {
		doc.Sites = append(doc.Sites, state.Site{Domain: fmt.Sprintf("bulk%05d.example.test", i), Aliases: []string{fmt.Sprintf("www.bulk%05d.example.test", i)}})
	}
	// The leader's first writes (DH parameters) can race the import: 412.
	for attempt := 0; ; attempt++ {
		_, err := n.api.PutState(context.Background(), doc, false)
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(err.Error(), "412") {
			b.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The pass that links every site may take a while (a link costs a
	// fraction of a millisecond on some file systems), then it converges.
	n.eventually("the node converged", 10*time.Minute, func() error {
		st, err := n.api.Status(context.Background())
		if err != nil {
			return err
		}
		if st.AppliedRevision != st.DesiredRevision {
			return fmt.Errorf("applied %d, desired %d", st.AppliedRevision, st.DesiredRevision)
		}
		return nil
	})
}

// changeLatencies adds count sites one at a time and returns, for each,
// the time from the write returning to nginx serving it.
func (n *testNode) changeLatencies(b *testing.B, offset, count int) []time.Duration {
	ctx := context.Background()
	lat := make([]time.Duration, 0, count)
	for i := range count {
		host := fmt.Sprintf("change%05d.example.test", offset+i)
		if _, err := n.api.PutSite(ctx, state.Site{Domain: host}, client.Precondition{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			code, _, _, err := n.get(host, "/")
			if err == nil && code == 200 {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s not served after 30s", host)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

func reportLatencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat)), "changes")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkServeDeployedSite compares the requests per second of a
// deployed site through the generated config with bare nginx serving the
// same directory with a minimal config, both on loopback with the same Go
// load generator (8 keep-alive connections).
func BenchmarkServeDeployedSite(b *testing.B) {
	for b.Loop() {
		n := benchNode(b)
		ctx := context.Background()
		if _, err := n.api.PutSite(ctx, state.Site{Domain: "rps.test"}, client.Precondition{}); err != nil {
			b.Fatal(err)
		}
		files := map[string]string{"index.html": strings.Repeat("<p>hello sitefleet</p>\n", 200)}
		res := n.upload(b, "web", "1", tarGz(b, files), "")
		if _, err := n.api.Deploy(ctx, "rps.test", "web", "1", 10*time.Second, client.Precondition{}); err != nil {
			b.Fatal(err)
		}
		root := filepath.Join(n.cfg.DataDir, "bundles", res.Bundle.SHA256)
		bare := testutil.BareNginx(b, root, "auto", "")
		// Warm both up, then alternate and keep the better of two rounds
		// each, so that a reload settling or a noisy moment does not
		// decide the ratio.
		loadRPS(b, n.cfg.Web.HTTPListen, "rps.test", time.Second)
		loadRPS(b, bare, "anything", time.Second)
		var ours, base float64
		for range 2 {
			ours = max(ours, loadRPS(b, n.cfg.Web.HTTPListen, "rps.test", 3*time.Second))
			base = max(base, loadRPS(b, bare, "anything", 3*time.Second))
		}
		b.ReportMetric(ours, "sitefleet-rps")
		b.ReportMetric(base, "bare-nginx-rps")
		b.ReportMetric(ours/base, "ratio")
		b.ReportMetric(0, "ns/op")
	}
}

// loadRPS runs 8 keep-alive clients against addr for d and returns the
// rate of 200 answers; any other answer fails the benchmark.
func loadRPS(b *testing.B, addr, host string, d time.Duration) float64 {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var ok, bad atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				req.Host = host
				resp, err := c.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() > 0 {
		b.Fatalf("%d failed requests to %s", bad.Load(), addr)
	}
	return float64(ok.Load()) / d.Seconds()
}
