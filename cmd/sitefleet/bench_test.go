package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
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
	return startNode(b, nodeConfig(b, e.Endpoint()))
}

// importSites replaces the state with n sites and waits until the last is
// served.
func (n *testNode) importSites(b *testing.B, count int) {
	doc := state.Document{}
	for i := range count {
		doc.Sites = append(doc.Sites, state.Site{Domain: fmt.Sprintf("bulk%05d.example.test", i), Aliases: []string{fmt.Sprintf("www.bulk%05d.example.test", i)}})
	}
	if _, err := n.api.PutState(context.Background(), doc, false); err != nil {
		b.Fatal(err)
	}
	n.waitServed(fmt.Sprintf("bulk%05d.example.test", count-1))
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
