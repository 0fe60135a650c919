package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// TestHostileRecordsDoNotStopOtherSites writes records straight into etcd,
// behind the API's back: names nginx reads as keywords, undecodable JSON,
// a record under another site's key, values that could end a directive,
// and a change to a served site that no longer validates. Every later
// change of every other site must still apply; the served site keeps its
// last good form; node status and /metrics name each bad site.
func TestHostileRecordsDoNotStopOtherSites(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "good.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "kept.test", Aliases: []string{"www.kept.test"}}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "zz.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("good.test")
	n.waitServed("www.kept.test")
	n.waitServed("zz.test")

	cli := e.Client(t)
	keys := state.Keys{Prefix: cfg.State.Etcd.KeyPrefix}
	hostile := map[string]string{
		"default":      `{"domain":"default"}`,
		"include":      `{"domain":"include"}`,
		"hostnames":    `{"domain":"hostnames","aliases":["volatile"]}`,
		"garbage.test": `{"domain": "garbage.test", "aliases": [`,
		"other.test":   `{"domain":"good.test","aliases":["stolen.test"]}`,
		"semi.test":    `{"domain":"semi.test","aliases":["a.test;root /etc"]}`,
		"brace.test":   `{"domain":"brace.test","aliases":["x}.test"]}`,
		"kept.test":    `{"domain":"kept.test","aliases":["www.kept.test","bad\nname.test"]}`,
		"zz.test":      `{"domain": "zz.test", "aliases": [`, // a served site turned unreadable
	}
	for domain, value := range hostile {
		if _, err := cli.Put(ctx, keys.Site(domain), value); err != nil {
			t.Fatal(err)
		}
	}
	// Records of other kinds that do not decode are left out, too.
	for _, key := range []string{keys.Bundle("junk", "1"), keys.Cert("junk"), keys.DHParams()} {
		if _, err := cli.Put(ctx, key, "{not json"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Put(ctx, keys.Meta(), fmt.Sprintf(`{"updatedAt":%q}`, time.Now().UTC().Format(time.RFC3339))); err != nil {
		t.Fatal(err)
	}

	// A change through the API after the hostile records applies.
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "later.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("later.test")
	n.waitServed("good.test")
	n.waitServed("www.kept.test") // its last good form
	for _, host := range []string{"default", "include", "hostnames", "volatile", "semi.test", "brace.test", "stolen.test", "other.test"} {
		if code, body, _, err := n.get(host, "/"); err != nil || code != 404 || !strings.Contains(body, "no site is configured") {
			t.Errorf("GET %s: got %d %q %v, want the unknown-host answer", host, code, body, err)
		}
	}
	n.eventually("status names every bad site", 10*time.Second, func() error {
		st, err := n.api.Status(ctx)
		if err != nil {
			return err
		}
		for domain := range hostile {
			if st.SiteErrors[domain] == "" {
				return fmt.Errorf("no error for %s in %v", domain, st.SiteErrors)
			}
		}
		if st.LastError != "" {
			return fmt.Errorf("last error %q: the pass should have succeeded", st.LastError)
		}
		return nil
	})
	if out, err := n.cli("cluster", "status"); err != nil || !strings.Contains(out, "garbage.test") || !strings.Contains(out, "unreadable site record") {
		t.Errorf("cluster status does not name the bad sites: %v\n%s", err, out)
	}
	metrics := n.metrics()
	for _, want := range []string{`sitefleet_site_error{reason="unreadable site record`, `site="garbage.test"`, `site="default"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// More changes: the bad sites keep their last good forms pass after
	// pass (the served form of one is looked up in the last applied state).
	for _, d := range []string{"later2.test", "later3.test", "later4.test"} {
		if _, err := n.api.PutSite(ctx, state.Site{Domain: d}, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
		n.waitServed(d)
		n.waitServed("zz.test")
		n.waitServed("www.kept.test")
	}

	// Repaired through the API, a bad site applies.
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "kept.test", Aliases: []string{"www.kept.test", "new.kept.test"}}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("new.kept.test")
}

// A record written behind the API's back without touching the meta key
// (the state revision stays where it was) is still applied: the node
// notices the mirror changed, not only the state revision.
func TestRecordBehindTheAPIWithoutMeta(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	n := startNode(t, cfg)
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "a.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("a.test")
	n.waitConverged()
	keys := state.Keys{Prefix: cfg.State.Etcd.KeyPrefix}
	if _, err := e.Client(t).Put(ctx, keys.Site("a.test"), `{"domain":"a.test","aliases":["b.test"]}`); err != nil {
		t.Fatal(err)
	}
	n.waitServed("b.test")
	if _, err := e.Client(t).Put(ctx, keys.Site("a.test"), `{"domain":"a.test","aliases":["bad\nname.test"]}`); err != nil {
		t.Fatal(err)
	}
	n.eventually("the node to name the bad record", 10*time.Second, func() error {
		st, err := n.api.Status(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(st.SiteErrors["a.test"], "invalid") {
			return fmt.Errorf("site errors %v", st.SiteErrors)
		}
		return nil
	})
}
