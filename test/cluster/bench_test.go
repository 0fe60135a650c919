package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkConvergence measures, over 100 changes made through the three
// nodes in turn, the time from the API write returning to every node
// serving the change.
func BenchmarkConvergence(b *testing.B) {
	for b.Loop() {
		f := newFleet(b)
		var lat []time.Duration
		for i := range 100 {
			host := fmt.Sprintf("conv%03d.test", i)
			addSite(b, f.client(i%3), host)
			start := time.Now()
			for _, n := range f.nodes {
				for n.serves(host) != nil {
					if time.Since(start) > 30*time.Second {
						b.Fatalf("%s not served by %s", host, n.name)
					}
					time.Sleep(time.Millisecond)
				}
			}
			lat = append(lat, time.Since(start))
		}
		report(b, lat, "ms")
	}
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
