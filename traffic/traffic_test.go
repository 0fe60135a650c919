package traffic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sites resolves a fixed set of names.
type sites map[string]string

func (s sites) SiteOf(host string) (string, bool, bool) {
	d, ok := s[host]
	return d, strings.HasPrefix(host, "pr--"), ok
}

// gather returns the collector's samples as "name{labels} value" lines.
func gather(t *testing.T, c *Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				for _, b := range m.GetHistogram().GetBucket() {
					out[fmt.Sprintf("%s_le_%g", key, b.GetUpperBound())] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

func appendLog(t *testing.T, path, lines string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		t.Fatal(err)
	}
}

// TestCountsPerSite checks what a scrape shows: requests by site (aliases
// count for their site) and status class, bytes, the duration histogram,
// unknown hosts under one label, a line split across two reads counted
// once, and the JSON log.
func TestCountsPerSite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.log")
	var js bytes.Buffer
	c := New(Options{Path: path, Sites: sites{"a.test": "a.test", "www.a.test": "a.test", "b.test": "b.test", "pr--a-test.p.test": "a.test"}, JSON: &js})
	if err := c.ReadOnce(); err != nil { // no log yet: nothing, no error
		t.Fatal(err)
	}
	appendLog(t, path, "1700000000.123 a.test 200 1500 0.000\n"+
		"1700000000.200 www.a.test 304 200 0.002\n"+
		"1700000001.000 b.test 404 300 0.030\n"+
		"1700000001.500 evil.example 404 100 0.000\n"+
		"1700000001.550 pr--a-test.p.test 200 50 0.000\n"+
		"1700000001.600 a.test 503 100 3.0")
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	appendLog(t, path, "00\n") // completes the last line
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	got := gather(t, c)
	for key, want := range map[string]float64{
		`sitefleet_site_requests_total{code=2xx,site=a.test}`:           2,
		`sitefleet_site_requests_total{code=3xx,site=a.test}`:           1,
		`sitefleet_site_requests_total{code=5xx,site=a.test}`:           1,
		`sitefleet_site_requests_total{code=4xx,site=b.test}`:           1,
		`sitefleet_site_requests_total{code=4xx,site=_unknown}`:         1,
		`sitefleet_site_sent_bytes_total{site=a.test}`:                  1850,
		`sitefleet_site_request_duration_seconds{site=a.test}_count`:    4,
		`sitefleet_site_request_duration_seconds{site=a.test}_le_0.001`: 2,
		`sitefleet_site_request_duration_seconds{site=a.test}_le_0.005`: 3,
		`sitefleet_site_request_duration_seconds{site=a.test}_le_2.5`:   3,
		`sitefleet_site_request_duration_seconds{site=b.test}_le_0.025`: 0,
		`sitefleet_site_request_duration_seconds{site=b.test}_le_0.1`:   1,
		`sitefleet_traffic_log_lines_total{result=ok}`:                  6,
		`sitefleet_traffic_log_lines_total{result=bad}`:                 0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("JSON log has %d lines, want 6:\n%s", len(lines), js.String())
	}
	var e entry
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil {
		t.Fatal(err)
	}
	if want := (entry{Time: "2023-11-14T22:13:20.2Z", Site: "a.test", Host: "www.a.test", Status: 304, Bytes: 200, Duration: 0.002}); e != want {
		t.Errorf("JSON entry %+v, want %+v", e, want)
	}
	e = entry{}
	if err := json.Unmarshal([]byte(lines[4]), &e); err != nil {
		t.Fatal(err)
	}
	if want := (entry{Time: "2023-11-14T22:13:21.55Z", Site: "a.test", Host: "pr--a-test.p.test", Status: 200, Bytes: 50, Preview: true}); e != want {
		t.Errorf("JSON entry of a preview %+v, want %+v", e, want)
	}
}

// TestHostileLines feeds what a client can put in the log (any Host
// header nginx accepts: spaces, quotes, escapes, thousands of names) and
// garbage: nothing makes a series beyond the known sites and the two
// catch-all labels, and the JSON log stays one valid object per line.
func TestHostileLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.log")
	var js bytes.Buffer
	c := New(Options{Path: path, Sites: sites{"a.test": "a.test"}, MaxSites: 2, JSON: &js})
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "1700000000.000 h%d.evil 404 10 0.000\n", i)
	}
	b.WriteString("1700000000.000 a b c 200 10 0.000\n")              // a host with spaces
	b.WriteString(`1700000000.000 x\x22y\x0Az"} 200 10 0.000` + "\n") // escapes as nginx writes them
	b.WriteString("1700000000.000 a.test 200 -5 0.000\n")             // bad bytes
	b.WriteString("1700000000.000 a.test 200 5 NaN\n")                // bad duration
	b.WriteString("garbage\n\n")                                      // too few fields, empty
	b.WriteString(strings.Repeat("x", 3*maxLine) + "\n")              // too long
	b.WriteString("1700000000.000 a.test 200 5 0.001\n")              // still counted after all that
	appendLog(t, path, b.String())
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	got := gather(t, c)
	labels := map[string]bool{}
	for key := range got {
		if i := strings.Index(key, "site="); i >= 0 {
			labels[strings.TrimRight(strings.SplitN(key[i+5:], "}", 2)[0], ",")] = true
		}
	}
	if len(labels) != 2 || !labels["a.test"] || !labels[UnknownHosts] {
		t.Errorf("site labels %v, want a.test and %s only", labels, UnknownHosts)
	}
	if got[`sitefleet_site_requests_total{code=2xx,site=a.test}`] != 1 {
		t.Errorf("a.test's good line after the bad ones was not counted: %v", got)
	}
	if got[`sitefleet_traffic_log_lines_total{result=bad}`] < 5 {
		t.Errorf("bad lines: %v, want at least 5", got[`sitefleet_traffic_log_lines_total{result=bad}`])
	}
	// Exactly: the hosts with spaces and escapes are requests of unknown
	// hosts, not bad lines; -5, NaN, garbage, the empty and the long line
	// are bad.
	for key, want := range map[string]float64{
		`sitefleet_traffic_log_lines_total{result=bad}`:         5,
		`sitefleet_site_requests_total{code=2xx,site=_unknown}`: 2,
		`sitefleet_site_requests_total{code=4xx,site=_unknown}`: 5000,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	for i, l := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Fatalf("JSON line %d is not JSON: %q", i, l)
		}
	}
}

// A line longer than maxLine that arrives across reads is one bad line:
// its tail, whatever it looks like, is not counted as a line of its own.
func TestLongLineAcrossReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.log")
	c := New(Options{Path: path, Sites: sites{"a.test": "a.test", "b.test": "b.test"}})
	appendLog(t, path, "1700000000.000 "+strings.Repeat("h", 2*maxLine))
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	// The rest of that line looks like a request for b.test.
	appendLog(t, path, strings.Repeat("h", maxLine)+" 1700000000.000 b.test 200 10 0.000\n1700000000.000 a.test 200 10 0.000\n")
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	got := gather(t, c)
	for key, want := range map[string]float64{
		`sitefleet_traffic_log_lines_total{result=bad}`:       1,
		`sitefleet_traffic_log_lines_total{result=ok}`:        1,
		`sitefleet_site_requests_total{code=2xx,site=a.test}`: 1,
		`sitefleet_site_requests_total{code=2xx,site=b.test}`: 0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

// TestMaxSitesBoundsSeries checks that sites past MaxSites count as
// _other, and that a site keeps its series once it has one.
func TestMaxSitesBoundsSeries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.log")
	known := sites{}
	for i := range 10 {
		known[fmt.Sprintf("s%d.test", i)] = fmt.Sprintf("s%d.test", i)
	}
	c := New(Options{Path: path, Sites: known, MaxSites: 3})
	var b strings.Builder
	for i := range 10 {
		fmt.Fprintf(&b, "1700000000.000 s%d.test 200 1 0.000\n", i)
	}
	b.WriteString("1700000000.000 s0.test 200 1 0.000\n")
	appendLog(t, path, b.String())
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	got := gather(t, c)
	if got[`sitefleet_site_requests_total{code=2xx,site=s0.test}`] != 2 || got[`sitefleet_site_requests_total{code=2xx,site=_other}`] != 7 {
		t.Errorf("want s0.test 2 and _other 7: %v", got)
	}
	if _, ok := got[`sitefleet_site_requests_total{code=2xx,site=s5.test}`]; ok {
		t.Error("s5.test has a series past maxSites")
	}
}

// TestTruncatesOnceRead checks that the log is emptied once read past
// MaxBytes, that reading goes on from its new start, and that a log
// truncated by someone else is read from its start once it is seen
// shorter than what was read.
func TestTruncatesOnceRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.log")
	c := New(Options{Path: path, Sites: sites{"a.test": "a.test"}, MaxBytes: 100})
	line := "1700000000.000 a.test 200 1 0.000\n"
	appendLog(t, path, strings.Repeat(line, 5))
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("log not truncated after %d bytes read: %v, %v", 5*len(line), fi.Size(), err)
	}
	appendLog(t, path, line)
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadOnce(); err != nil { // sees it shorter than what it read
		t.Fatal(err)
	}
	appendLog(t, path, line)
	if err := c.ReadOnce(); err != nil {
		t.Fatal(err)
	}
	if got := gather(t, c)[`sitefleet_site_requests_total{code=2xx,site=a.test}`]; got != 7 {
		t.Errorf("a.test requests %v, want 7", got)
	}
}

// FuzzConsume feeds arbitrary bytes, in two reads: no panic, and only the
// known site and the catch-all labels ever appear.
func FuzzConsume(f *testing.F) {
	f.Add([]byte("1700000000.000 a.test 200 1 0.000\n"), 10)
	f.Add([]byte("1 a b c 200 1 0.1\n\n\n1e308 a.test 999 18446744073709551615 1e308\n"), 3)
	f.Add([]byte("-1 a.test -200 1 -0.1\n+Inf a.test 200 1 +Inf\n"), 0)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		c := New(Options{Path: "unused", Sites: sites{"a.test": "a.test"}, MaxSites: 1, JSON: &bytes.Buffer{}})
		split = max(0, min(split, len(data)))
		c.consume(data[:split])
		c.consume(data[split:])
		for label := range c.sites {
			if label != "a.test" && label != UnknownHosts && label != OtherSites {
				t.Fatalf("label %q", label)
			}
		}
		if len(c.rest) > maxLine {
			t.Fatalf("kept %d bytes of an incomplete line", len(c.rest))
		}
	})
}

// BenchmarkConsume is the node's cost per request line: what reading the
// traffic log takes from the CPUs nginx serves with.
func BenchmarkConsume(b *testing.B) {
	var buf bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&buf, "1700000000.%03d www.site%d.test 200 1234 0.%03d\n", i%1000, i%10, i%7)
	}
	known := sites{}
	for i := range 10 {
		known[fmt.Sprintf("www.site%d.test", i)] = fmt.Sprintf("site%d.test", i)
	}
	c := New(Options{Path: "unused", Sites: known})
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c.consume(data)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/line")
}
