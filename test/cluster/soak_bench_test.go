package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/state"
)

// BenchmarkSoak compresses months of a fleet's life into minutes: three
// nodes, the leader compacting etcd every second to the revision of two
// seconds before, and rounds of changes (sites added, changed and
// removed through the nodes in turn, each followed by the nodes' status
// updates). After each round it prints etcd's revision and database size
// and each node's goroutines, open files and resident memory, and it
// reports the second and last rounds' figures: with compaction the
// database levels off while the revision grows, and nothing in the nodes
// grows with the changes. The baseline, in the same run, is the same
// fleet and changes with compaction turned off.
func BenchmarkSoak(b *testing.B) {
	b.Run("compaction-off", func(b *testing.B) { soak(b, "  compactInterval: 0s\n") })
	b.Run("compaction-on", func(b *testing.B) { soak(b, "  compactInterval: 1s\n  compactRetention: 2s\n") })
}

type soakSample struct {
	revision, compacted, dbSize, dbInUse float64
	goroutines, fds, rss                 [3]float64
}

func soak(b *testing.B, clusterLines string) {
	const rounds, changes, domains = 8, 400, 100
	f := newFleetWith(b, fleetOptions{cluster: func(int) string { return clusterLines }})
	ctx := context.Background()
	type sample = soakSample
	var samples []sample
	total := 0
	for round := range rounds {
		for j := range changes {
			c := f.client(total % 3)
			domain := fmt.Sprintf("soak%03d.test", (total*7)%domains)
			var err error
			switch total % 4 {
			case 3:
				_, err = c.DeleteSite(ctx, domain, client.Precondition{})
				var ce *client.Error
				if errors.As(err, &ce) && ce.Status == http.StatusNotFound {
					err = nil
				}
			default:
				_, err = c.PutSite(ctx, state.Site{Domain: domain, Aliases: []string{fmt.Sprintf("www%d.%s", j, domain)}}, client.Precondition{})
			}
			if err != nil {
				b.Fatalf("change %d: %v", total, err)
			}
			total++
		}
		f.eventually("every node serves the latest state", time.Minute, func() error {
			for i := range f.nodes {
				st, err := f.client(i).Status(ctx)
				if err != nil {
					return err
				}
				if st.AppliedRevision < st.DesiredRevision || st.DesiredRevision == 0 {
					return fmt.Errorf("%s applied %d of %d", f.nodes[i].name, st.AppliedRevision, st.DesiredRevision)
				}
			}
			return nil
		})
		time.Sleep(3 * time.Second) // two compactions
		var s sample
		for i, n := range f.nodes {
			m := scrape(b, n)
			if i == 0 {
				s.revision, s.dbSize, s.dbInUse = m["sitefleet_etcd_revision"], m["sitefleet_etcd_db_size_bytes"], m["sitefleet_etcd_db_size_in_use_bytes"]
			}
			s.compacted = max(s.compacted, m["sitefleet_etcd_compacted_revision"])
			s.goroutines[i], s.fds[i], s.rss[i] = m["go_goroutines"], m["process_open_fds"], m["process_resident_memory_bytes"]
		}
		samples = append(samples, s)
		mib := func(v float64) string { return fmt.Sprintf("%.1f", v/(1<<20)) }
		b.Logf("round %d (%d changes): etcd revision %.0f, compacted to %.0f, db %s MiB (%s in use); goroutines %v, open files %v, RSS MiB %s/%s/%s",
			round+1, total, s.revision, s.compacted, mib(s.dbSize), mib(s.dbInUse), s.goroutines, s.fds, mib(s.rss[0]), mib(s.rss[1]), mib(s.rss[2]))
	}
	first, last := samples[1], samples[len(samples)-1] // round 1 still warms up
	maxOf := func(v [3]float64) float64 { return max(v[0], v[1], v[2]) }
	b.ReportMetric(float64(total), "changes")
	b.ReportMetric(last.revision, "etcd-revision-end")
	b.ReportMetric(first.dbSize/(1<<20), "db-MiB-round2")
	b.ReportMetric(last.dbSize/(1<<20), "db-MiB-end")
	b.ReportMetric(maxOf(first.goroutines), "goroutines-round2")
	b.ReportMetric(maxOf(last.goroutines), "goroutines-end")
	b.ReportMetric(maxOf(first.fds), "fds-round2")
	b.ReportMetric(maxOf(last.fds), "fds-end")
	b.ReportMetric(maxOf(first.rss)/(1<<20), "rss-MiB-round2")
	b.ReportMetric(maxOf(last.rss)/(1<<20), "rss-MiB-end")
	b.ReportMetric(0, "ns/op")
}

// scrape reads a node's /metrics into name -> value (unlabelled series).
func scrape(b *testing.B, n *node) map[string]float64 {
	req, err := http.NewRequest(http.MethodGet, "http://"+n.api+"/metrics", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out
}
