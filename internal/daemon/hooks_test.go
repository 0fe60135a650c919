package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/hooks"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// receiver is a webhook receiver on loopback that checks every request's
// signature and records it.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret atomic.Pointer[[]byte]
	fail   atomic.Int32 // answer 500 to this many more requests
	mu     sync.Mutex
	got    []delivered
}

type delivered struct {
	event model.HookEvent
	key   string
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var e model.HookEvent
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("hook body %q: %v", body, err)
		}
		if s := r.secret.Load(); s != nil {
			if err := hooks.Verify(*s, req.Header.Get(hooks.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
				t.Errorf("event %s: %v", e.ID, err)
			}
		}
		if key := req.Header.Get(hooks.IDHeader); key != e.ID || req.Header.Get(hooks.EventHeader) != e.Type {
			t.Errorf("headers %v for event %+v", req.Header, e)
		}
		r.mu.Lock()
		r.got = append(r.got, delivered{event: e, key: req.Header.Get(hooks.IDHeader)})
		r.mu.Unlock()
		if r.fail.Add(-1) >= 0 {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// deliveries returns what arrived, in order.
func (r *receiver) deliveries() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

// Webhooks, end to end on one node: events for a site's life and its
// deploys arrive signed; a failed delivery is retried with the same
// idempotency key; a receiver that hangs slows nothing; the log shows
// every attempt; bad requests are refused and change nothing.
func TestWebhooks(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	r := newReceiver(t)

	// Bad requests: 422 naming the problem, and no hook.
	for name, req := range map[string]client.HookRequest{
		"no events":     {URL: r.srv.URL},
		"unknown event": {URL: r.srv.URL, Events: []string{"site.exploded"}},
		"bad url":       {URL: "ftp://x/", Events: []string{model.EventSiteCreated}},
		"credentials":   {URL: "https://u:p@x/", Events: []string{model.EventSiteCreated}},
		"short secret":  {URL: r.srv.URL, Events: []string{model.EventSiteCreated}, Secret: "short"},
	} {
		if _, err := n.api.AddHook(ctx, req); err == nil || !strings.Contains(err.Error(), "HTTP 422") {
			t.Errorf("%s: %v, want a 422", name, err)
		}
	}
	if err := n.api.RemoveHook(ctx, "../../etc"); err == nil || !strings.Contains(err.Error(), "HTTP 422") {
		t.Errorf("remove with a bad ID: %v, want a 422", err)
	}
	if l, err := n.api.ListHooks(ctx); err != nil || len(l.Hooks) != 0 {
		t.Fatalf("hooks after bad requests: %+v %v", l, err)
	}

	siteEvents := []string{model.EventSiteCreated, model.EventSiteDeleted, model.EventDeployStarted, model.EventDeployRolledBack,
		model.EventDeploySucceeded, model.EventDeployFailed, model.EventCertIssued}
	created, err := n.api.AddHook(ctx, client.HookRequest{URL: r.srv.URL, Events: siteEvents})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(created.Secret)
	r.secret.Store(&secret)
	if l, err := n.api.ListHooks(ctx); err != nil || len(l.Hooks) != 1 || l.Hooks[0].Secret != "" || l.Hooks[0].ID != created.Hook.ID {
		t.Fatalf("hook list %+v %v: want the hook, without its secret", l, err)
	}
	// A second hook whose receiver hangs until the test ends.
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); hanging.Close() })
	if _, err := n.api.AddHook(ctx, client.HookRequest{URL: hanging.URL, Events: model.HookEventTypes}); err != nil {
		t.Fatal(err)
	}

	r.fail.Store(1)
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "hooked.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.eventually("site.created delivered after one failure", 30*time.Second, func() error {
		got := r.deliveries()
		if len(got) < 2 {
			return fmt.Errorf("%d deliveries", len(got))
		}
		if got[0].event.Type != model.EventSiteCreated || got[0].event.Site != "hooked.test" || got[1].key != got[0].key {
			return fmt.Errorf("deliveries %+v: want site.created twice with one key", got)
		}
		return nil
	})

	for _, v := range []string{"1", "2"} {
		n.upload(t, "web", v, tarGz(t, map[string]string{"index.html": "v" + v}), "")
	}
	for _, v := range []string{"1", "2"} {
		// --wait answers while the hanging receiver holds its requests.
		if _, err := n.api.Deploy(ctx, "hooked.test", "web", v, 30*time.Second, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.api.Rollback(ctx, "hooked.test", 30*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.DeleteSite(ctx, "hooked.test", client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	chain, key, err := sftls.SelfSigned([]string{"*.hooked.test"}, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.ImportCertificate(ctx, client.CertImport{ID: "hooked", Chain: string(chain), Key: string(key)}); err != nil {
		t.Fatal(err)
	}
	// Each deploy and the rollback are followed by deploy.succeeded once
	// the node serves them; the deletion may overtake the last one.
	want := map[string]int{model.EventSiteCreated: 1, model.EventDeployStarted: 2, model.EventDeployRolledBack: 1,
		model.EventDeploySucceeded: 3, model.EventSiteDeleted: 1, model.EventCertIssued: 1}
	byType := map[string]model.HookEvent{}
	n.eventually("every event delivered", 30*time.Second, func() error {
		count := map[string]int{}
		seen := map[string]bool{}
		for _, d := range r.deliveries() {
			if !seen[d.key] {
				seen[d.key] = true
				count[d.event.Type]++
				byType[d.event.Type] = d.event
			}
		}
		if fmt.Sprint(count) != fmt.Sprint(want) {
			return fmt.Errorf("events %v, want %v", count, want)
		}
		return nil
	})
	if d := byType[model.EventDeployRolledBack]; d.Deployment == nil || d.Deployment.Version != "1" || d.Previous == nil || d.Previous.Version != "2" {
		t.Errorf("rollback event %+v: want version 1 after 2", d)
	}
	if d := byType[model.EventDeploySucceeded]; d.Deployment == nil || d.Site != "hooked.test" {
		t.Errorf("deploy.succeeded event %+v: want the site and its deployment", d)
	}
	if d := byType[model.EventCertIssued]; d.Certificate == nil || d.Certificate.ID != "hooked" || d.Certificate.Domains[0] != "*.hooked.test" {
		t.Errorf("certificate.issued event %+v: want the imported certificate", d)
	}

	// The leader logs each attempt once the receiver has answered.
	n.eventually("every attempt in the log", 10*time.Second, func() error {
		log, err := n.api.HookDeliveries(ctx, 0)
		if err != nil {
			return err
		}
		results := map[string]int{}
		for _, e := range log.Entries {
			if e.Hook == created.Hook.ID {
				results[e.Result]++
			}
		}
		if results["retrying"] != 1 || results["delivered"] != 9 {
			return fmt.Errorf("delivery log results %v, want 1 retrying and 9 delivered:\n%+v", results, log.Entries)
		}
		return nil
	})
	// A deploy the node cannot serve: a record written behind the API's
	// back with a new deployment and a name nginx must never see.
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "broken.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	raw := `{"domain":"broken.test","aliases":["bad\nname.test"],"deployment":{"app":"web","version":"1","sha256":"` +
		strings.Repeat("ab", 32) + `","deployedAt":"2026-01-01T00:00:00Z"}}`
	if _, err := e.Client(t).Put(ctx, state.Keys{Prefix: n.cfg.State.Etcd.KeyPrefix}.Site("broken.test"), raw); err != nil {
		t.Fatal(err)
	}
	n.eventually("deploy.failed for broken.test", 30*time.Second, func() error {
		for _, d := range r.deliveries() {
			if d.event.Type == model.EventDeployFailed && d.event.Site == "broken.test" && strings.Contains(d.event.Errors[n.cfg.NodeName], "invalid") {
				return nil
			}
		}
		var seen []string
		for _, d := range r.deliveries() {
			if d.event.Site == "broken.test" {
				seen = append(seen, fmt.Sprintf("%s %v", d.event.Type, d.event.Errors))
			}
		}
		st, _ := n.api.Status(ctx)
		return fmt.Errorf("no deploy.failed naming the node's error yet; broken.test events %v; node status %+v", seen, st)
	})

	// The secret is nowhere in etcd in clear text.
	resp, err := e.Client(t).Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Value), created.Secret) {
			t.Errorf("%s holds the hook's secret", kv.Key)
		}
	}
	// The CLI shows the same.
	if out, err := n.cli("hook", "list"); err != nil || !strings.Contains(out, created.Hook.ID) || strings.Contains(out, created.Secret) {
		t.Errorf("hook list: %v\n%s", err, out)
	}
	if out, err := n.cli("hook", "log", "--limit", "50"); err != nil || !strings.Contains(out, "retrying") || !strings.Contains(out, "deploy.rolled_back") {
		t.Errorf("hook log: %v\n%s", err, out)
	}
	if out, err := n.cli("hook", "add", r.srv.URL, "--events", "site.moved"); err == nil || !strings.Contains(err.Error(), `event "site.moved"`) {
		t.Errorf("hook add with an unknown event: %v\n%s", err, out)
	}
	if err := n.api.RemoveHook(ctx, created.Hook.ID); err != nil {
		t.Fatal(err)
	}
	if err := n.api.RemoveHook(ctx, created.Hook.ID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("removing it again: %v, want a 404", err)
	}
}
