package cluster_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// BenchmarkScale runs one node process (etcd runs apart, as in a fleet)
// holding N sites, half of them served over HTTPS with an imported
// wildcard certificate, and reports: how long the whole state took to
// import and serve, the node's resident memory, and over 30 site adds,
// the API write's round trip and the time from the write returning to
// nginx serving the site, and the resident memory after them.
//
// The node's default memory limit follows its live heap; the last run
// sets none (memoryLimitBytes -1, Go's default alone) as the baseline of
// what that limit trades: garbage collection work for resident memory.
func BenchmarkScale(b *testing.B) {
	for _, run := range []struct {
		sites    int
		memLimit int64
	}{{10000, 0}, {100000, 0}, {100000, -1}} {
		name := fmt.Sprintf("sites=%d", run.sites)
		if run.memLimit < 0 {
			name += "/memoryLimit=none"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				benchScale(b, run.sites, run.memLimit)
			}
		})
	}
}

func benchScale(b *testing.B, sites int, memLimit int64) {
	f := newFleetWith(b, fleetOptions{nodes: 1, api: func(int) string { return "  maxBodyBytes: 67108864\n" },
		extra: func(int) string { return fmt.Sprintf("memoryLimitBytes: %d\n", memLimit) }})
	n, c, ctx := f.nodes[0], f.client(0), context.Background()
	chain, key, err := sftls.SelfSigned([]string{"*.scale.test"}, 24*time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.ImportCertificate(ctx, client.CertImport{ID: "wild", Chain: string(chain), Key: string(key)}); err != nil {
		b.Fatal(err)
	}
	doc, err := c.GetState(ctx)
	if err != nil {
		b.Fatal(err)
	}
	doc.Sites = nil
	for i := range sites {
		s := state.Site{Domain: fmt.Sprintf("s%06d.scale.test", i)}
		if i%2 == 0 {
			s.TLS = &state.SiteTLS{Mode: state.TLSImported, Certificate: "wild"}
		}
		doc.Sites = append(doc.Sites, s)
	}
	start := time.Now()
	importState(b, c, doc)
	last := fmt.Sprintf("s%06d.scale.test", sites-1)
	f.eventually("the last site served", 10*time.Minute, func() error { return n.serves(last) })
	// The pass that serves the last site may still be linking others.
	f.eventually("the node converged", 10*time.Minute, func() error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if st.AppliedRevision != st.DesiredRevision || st.AppliedRevision == 0 {
			return fmt.Errorf("applied %d, desired %d", st.AppliedRevision, st.DesiredRevision)
		}
		return nil
	})
	b.ReportMetric(time.Since(start).Seconds(), "import+serve-s")
	time.Sleep(2 * time.Second) // let the pass's garbage go
	b.ReportMetric(rssMiB(b, n.p.cmd.Process.Pid), "node-rss-MiB")

	var writes, served []time.Duration
	for i := range 30 {
		host := fmt.Sprintf("add%03d.scale.test", i)
		t0 := time.Now()
		if _, err := c.PutSite(ctx, state.Site{Domain: host}, client.Precondition{}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for n.serves(host) != nil {
			if time.Since(t1) > time.Minute {
				b.Fatalf("%s not served after a minute", host)
			}
			time.Sleep(time.Millisecond)
		}
		writes, served = append(writes, t1.Sub(t0)), append(served, time.Since(t1))
	}
	report(b, writes, "api-write-ms")
	report(b, served, "write-to-served-ms")
	// Each pass leaves garbage the runtime collects at its pace: the
	// resident memory after a run of single changes is reported too.
	b.ReportMetric(rssMiB(b, n.p.cmd.Process.Pid), "node-rss-after-adds-MiB")
}

// importState replaces the state with doc, retrying when the leader's
// first writes (DH parameters) race it (412).
func importState(b *testing.B, c *client.Client, doc state.Document) {
	for attempt := 0; ; attempt++ {
		_, err := c.PutState(context.Background(), doc, false)
		if err == nil {
			return
		}
		if attempt == 5 || !strings.Contains(err.Error(), "412") {
			b.Fatal(err)
		}
		fresh, gerr := c.GetState(context.Background())
		if gerr != nil {
			b.Fatal(gerr)
		}
		doc.Revision, doc.Certificates = fresh.Revision, fresh.Certificates
		time.Sleep(200 * time.Millisecond)
	}
}

// rssMiB reads a process's resident set size.
func rssMiB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
