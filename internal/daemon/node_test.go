package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

func TestSiteServedThenRemoved(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()

	if _, err := n.api.PutSite(ctx, state.Site{Domain: "Example.test", Aliases: []string{"www.example.test"}}, client.Precondition{Create: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "primary.test", Aliases: []string{"old.test"}, Options: state.SiteOptions{RedirectAliases: true}}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("example.test")
	n.waitServed("www.example.test")
	n.waitServed("primary.test")

	// The primary domain is served from its link as soon as it exists;
	// the alias redirect comes with the reload that follows.
	n.eventually("the alias redirects", 10*time.Second, func() error {
		code, _, hdr, err := n.get("old.test:8080", "/a/b?c=d")
		if err != nil {
			return err
		}
		if got, want := hdr.Get("Location"), "http://primary.test:8080/a/b?c=d"; code != http.StatusMovedPermanently || got != want {
			return fmt.Errorf("alias answered %d Location %q, want 301 %q", code, got, want)
		}
		return nil
	})
	code, body, _, err := n.get("unknown.test", "/")
	if err != nil || code != 404 || body != "sitefleet: no site is configured for this host\n" {
		t.Fatalf("unknown host: %d %q %v", code, body, err)
	}

	if _, err := n.api.DeleteSite(ctx, "example.test", client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitUnknown("example.test")
	n.waitUnknown("www.example.test")
	n.waitServed("primary.test")

	n.waitConverged()
	st, err := n.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Ready || st.Sites != 1 || !st.Etcd.Reachable {
		t.Fatalf("status = %+v", st)
	}
}

func TestInvalidInputIsRefusedAndChangesNothing(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "taken.test", Aliases: []string{"alias.test"}}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitLeaderSettled(e)
	before, err := n.api.GetState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 64) + ".test"
	tooLong := strings.Repeat("abcdefghi.", 26) + "test"
	cases := []struct {
		name   string
		path   string
		body   string
		status int
	}{
		{"empty alias", "ok.test", `{"aliases":[""]}`, 422},
		{"label over 63", long, `{}`, 422},
		{"name over 253", tooLong, `{}`, 422},
		{"semicolon", "a.test;", `{}`, 422},
		{"directive injection in alias", "ok.test", `{"aliases":["x.test; root /etc"]}`, 422},
		{"open brace", "a{.test", `{}`, 422},
		{"close brace alias", "ok.test", `{"aliases":["}.test"]}`, 422},
		{"space", "a%20b.test", `{}`, 422},
		{"newline alias", "ok.test", `{"aliases":["a.test\nserver {"]}`, 422},
		{"dollar", "$host", `{}`, 422},
		{"slash alias", "ok.test", `{"aliases":["a/b.test"]}`, 422},
		{"quote", "a%22b.test", `{}`, 422},
		{"single quote alias", "ok.test", `{"aliases":["a'b.test"]}`, 422},
		{"wildcard", "%2A.test", `{}`, 422},
		{"ip address", "10.0.0.1", `{}`, 422},
		{"nginx map keyword default", "default", `{}`, 422},
		{"nginx map keyword include", "include", `{}`, 422},
		{"nginx map keyword as alias", "ok.test", `{"aliases":["hostnames"]}`, 422},
		{"domain used as alias elsewhere", "alias.test", `{}`, 409},
		{"alias used elsewhere", "ok.test", `{"aliases":["taken.test"]}`, 409},
		{"body domain differs", "ok.test", `{"domain":"other.test"}`, 422},
		{"unknown field", "ok.test", `{"alias":["x.test"]}`, 400},
		{"not json", "ok.test", `{aliases`, 400},
		{"two documents", "ok.test", `{}{}`, 400},
		{"bad redirect option type", "ok.test", `{"options":{"redirectAliases":"yes"}}`, 400},
		{"huge body", "ok.test", `{"aliases":["` + strings.Repeat("a", 9<<20) + `"]}`, 413},
		{"tls not an object", "ok.test", `{"tls":"acme"}`, 400},
		{"tls unknown mode", "ok.test", `{"tls":{"mode":"letsencrypt"}}`, 422},
		{"tls unknown field", "ok.test", `{"tls":{"mode":"acme","certs":"x"}}`, 400},
		{"tls certificate path", "ok.test", `{"tls":{"mode":"imported","certificate":"../x"}}`, 422},
		{"tls certificate injection", "ok.test", `{"tls":{"mode":"imported","certificate":"x; root /"}}`, 422},
		{"tls missing certificate", "ok.test", `{"tls":{"mode":"imported","certificate":"nope"}}`, 422},
		{"hsts max-age as text", "ok.test", `{"tls":{"mode":"acme","hsts":{"maxAge":"1h"}}}`, 400},
		{"hsts max-age huge", "ok.test", `{"tls":{"mode":"acme","hsts":{"maxAge":1e30}}}`, 400},
		{"hsts max-age too long", "ok.test", `{"tls":{"mode":"acme","hsts":{"maxAge":63072001}}}`, 422},
		{"hsts preload too short", "ok.test", `{"tls":{"mode":"acme","hsts":{"maxAge":60,"includeSubdomains":true,"preload":true}}}`, 422},
		{"https redirect without tls", "ok.test", `{"tls":{"mode":"none","redirectHttp":true}}`, 422},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, problem := n.rawRequest(t, http.MethodPut, "/v1/sites/"+tc.path, tc.body, nil)
			if code != tc.status {
				t.Fatalf("PUT %s %s: status %d (%s), want %d", tc.path, tc.body, code, problem.Detail, tc.status)
			}
			if problem.Detail == "" || problem.Status != tc.status {
				t.Fatalf("problem = %+v, want a detail and status %d", problem, tc.status)
			}
		})
	}
	t.Run("state import with one bad site", func(t *testing.T) {
		doc := `{"sites":[{"domain":"fine.test"},{"domain":"bad}.test"}]}`
		if code, p := n.rawRequest(t, http.MethodPut, "/v1/state", doc, nil); code != 422 {
			t.Fatalf("status %d (%s), want 422", code, p.Detail)
		}
	})
	t.Run("state import with duplicate names", func(t *testing.T) {
		doc := `{"sites":[{"domain":"one.test","aliases":["same.test"]},{"domain":"same.test"}]}`
		if code, p := n.rawRequest(t, http.MethodPut, "/v1/state", doc, nil); code != 409 {
			t.Fatalf("status %d (%s), want 409", code, p.Detail)
		}
	})
	t.Run("no token", func(t *testing.T) {
		if code, _ := n.rawRequest(t, http.MethodPut, "/v1/sites/ok.test", `{}`, http.Header{"Authorization": {""}}); code != 401 {
			t.Fatalf("status %d, want 401", code)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		if code, _ := n.rawRequest(t, http.MethodGet, "/v1/state", "", http.Header{"Authorization": {"Bearer nope"}}); code != 401 {
			t.Fatalf("status %d, want 401", code)
		}
	})
	after, err := n.api.GetState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := fmt.Sprint(after.Sites), fmt.Sprint(before.Sites); a != b || after.Revision != before.Revision {
		t.Fatalf("state changed by refused requests:\n before %d %s\n after  %d %s", before.Revision, b, after.Revision, a)
	}
}

// rawRequest sends a request with the node's token (unless hdr overrides
// Authorization) and decodes a problem answer.
func (n *testNode) rawRequest(t testing.TB, method, path, body string, hdr http.Header) (int, client.Problem) {
	t.Helper()
	u := "http://" + n.cfg.API.Listen + path
	if _, err := url.Parse(u); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.waitToken())
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p client.Problem
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("error Content-Type = %q", ct)
		}
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&p); err != nil {
			t.Errorf("error body is not a problem document: %q", b)
		}
	}
	return resp.StatusCode, p
}

func TestStaleWriteIs412(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	v1, err := n.api.PutSite(ctx, state.Site{Domain: "a.test"}, client.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	read1, _ := n.api.GetSite(ctx, "a.test")
	read2, _ := n.api.GetSite(ctx, "a.test")
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "a.test", Aliases: []string{"b.test"}}, client.Precondition{IfMatch: read1.Revision}); err != nil {
		t.Fatal(err)
	}
	_, err = n.api.PutSite(ctx, state.Site{Domain: "a.test", Aliases: []string{"c.test"}}, client.Precondition{IfMatch: read2.Revision})
	if client.StatusOf(err) != http.StatusPreconditionFailed {
		t.Fatalf("stale write: %v, want 412", err)
	}
	if _, err := n.api.DeleteSite(ctx, "a.test", client.Precondition{IfMatch: v1.Revision}); client.StatusOf(err) != http.StatusPreconditionFailed {
		t.Fatalf("stale delete: %v, want 412", err)
	}
	doc, _ := n.api.GetState(ctx)
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "d.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.PutState(ctx, doc, false); client.StatusOf(err) != http.StatusPreconditionFailed {
		t.Fatalf("stale import: %v, want 412", err)
	}
	got, _ := n.api.GetSite(ctx, "a.test")
	if strings.Join(got.Aliases, ",") != "b.test" {
		t.Fatalf("site = %+v, want the first write's aliases", got)
	}
}

func TestStateExportImportDryRun(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	n.waitLeaderSettled(e)
	ctx := context.Background()
	for _, d := range []string{"a.test", "b.test"} {
		if _, err := n.api.PutSite(ctx, state.Site{Domain: d}, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := n.api.GetState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	doc.Sites = append(doc.Sites[1:], state.Site{Domain: "c.test"})
	res, err := n.api.PutState(ctx, doc, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.Changes); got != "[{remove site a.test} {add site c.test}]" || !res.DryRun {
		t.Fatalf("dry run = %+v", res)
	}
	n.waitServed("a.test")
	if _, err := n.api.PutState(ctx, doc, false); err != nil {
		t.Fatal(err)
	}
	n.waitServed("c.test")
	n.waitUnknown("a.test")
}

func TestNginxTestFailureKeepsTheLastGoodConfig(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	extra := filepath.Join(cfg.DataDir, "operator.conf")
	if err := os.WriteFile(extra, []byte("# operator settings\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Web.Nginx.ExtraHTTPConfigFiles = []string{extra}
	n := startNode(t, cfg)
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "good.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("good.test")

	if err := os.WriteFile(extra, []byte("this is not nginx config {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "next.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.eventually("the failed test shows in the status", 10*time.Second, func() error {
		st, err := n.api.Status(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(st.LastError, "nginx") || st.AppliedRevision == st.DesiredRevision {
			return fmt.Errorf("status = %+v", st)
		}
		return nil
	})
	n.waitServed("good.test")
	if code, _, _, _ := n.get("next.test", "/"); code != 404 {
		t.Fatalf("next.test answered %d while its config failed the test", code)
	}

	if err := os.WriteFile(extra, []byte("# fixed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "third.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("next.test")
	n.waitServed("third.test")
}

func TestMetrics(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	if _, err := n.api.PutSite(context.Background(), state.Site{Domain: "m.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitServed("m.test")
	n.waitConverged()
	if code, _ := n.rawRequest(t, http.MethodGet, "/metrics", "", http.Header{"Authorization": {""}}); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d, want 401", code)
	}
	b := n.metrics()
	for _, want := range []string{"sitefleet_sites 1", "sitefleet_ready 1", "sitefleet_etcd_reachable 1", "sitefleet_nginx_running 1", "go_goroutines",
		"sitefleet_nginx_reloads_total", `sitefleet_reconcile_duration_seconds_count{result="applied"}`, `sitefleet_reconcile_duration_seconds_bucket{result="applied",le="0.1"}`} {
		if !strings.Contains(b, want+"\n") && !strings.Contains(b, want+" ") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// metrics returns what the node's /metrics answers.
func (n *testNode) metrics() string {
	n.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.cfg.API.Listen+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+n.waitToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
