package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// Requests served by the real nginx show on /metrics per site: an alias
// counts for its site, a host no site serves under _unknown, and the
// health probe not at all. The JSON access log has one object per
// request.
func TestTrafficPerSite(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.Web.Traffic.JSONLog = filepath.Join(t.TempDir(), "access.json")
	n := startNode(t, cfg)
	ctx := context.Background()
	// count.test gets only the requests below; ready.test is the one the
	// waits probe (written after it, so once it is served both are).
	for _, s := range []state.Site{{Domain: "count.test", Aliases: []string{"www.count.test"}}, {Domain: "ready.test"}} {
		if _, err := n.api.PutSite(ctx, s, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	n.waitAnswer("ready.test served", "ready.test", "/", 30*time.Second, 200, func(string) bool { return true })
	n.waitAnswer("the node ready", "ready.test", "/.well-known/sitefleet/ready", 30*time.Second, 200, func(string) bool { return true })
	for _, r := range []struct {
		host, path string
		status     int
	}{
		{"count.test", "/", 200}, {"www.count.test", "/", 200}, {"count.test", "/missing", 404},
		{"nobody.example", "/", 404}, {"count.test", "/.well-known/sitefleet/ready", 200},
	} {
		if code, _, _, err := n.get(r.host, r.path); err != nil || code != r.status {
			t.Fatalf("GET %s%s: %d %v, want %d", r.host, r.path, code, err, r.status)
		}
	}
	n.eventually("the requests on /metrics", 15*time.Second, func() error {
		m := n.metrics()
		for _, want := range []struct {
			site, code string
			n          float64
		}{{"count.test", "2xx", 2}, {"count.test", "4xx", 1}, {"_unknown", "4xx", 1}} {
			if got := trafficValue(m, want.site, want.code); got < want.n {
				return fmt.Errorf("%s %s: %v, want %v", want.site, want.code, got, want.n)
			}
		}
		if !strings.Contains(m, `sitefleet_site_request_duration_seconds_count{site="count.test"} 3`) ||
			!strings.Contains(m, `sitefleet_site_sent_bytes_total{site="count.test"}`) {
			return fmt.Errorf("no duration or bytes for count.test")
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // a late line would be read by now
	if got := trafficValue(n.metrics(), "count.test", "2xx"); got != 2 {
		t.Errorf("count.test 2xx: %v, want 2 (the health probe must not count)", got)
	}

	f, err := os.Open(cfg.Web.Traffic.JSONLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sawAlias bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Time, Site, Host string
			Status           int
			Bytes            int64
			Duration         float64
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("JSON log line %q: %v", sc.Text(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil || e.Bytes <= 0 {
			t.Errorf("JSON log line %q: bad time or bytes", sc.Text())
		}
		if e.Host == "www.count.test" && e.Site == "count.test" && e.Status == 200 {
			sawAlias = true
		}
	}
	if !sawAlias {
		t.Error("the JSON log lacks the alias's request attributed to its site")
	}
}

// trafficValue reads sitefleet_site_requests_total for site and code (0
// when absent).
func trafficValue(metrics, site, code string) float64 {
	re := regexp.MustCompile(`(?m)^sitefleet_site_requests_total\{code="` + code + `",site="` + regexp.QuoteMeta(site) + `"\} (\S+)$`)
	m := re.FindStringSubmatch(metrics)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
