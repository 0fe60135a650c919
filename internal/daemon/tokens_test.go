package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
)

// problemOf returns the status and detail of an API error.
func problemOf(err error) (int, string) {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status, ce.Problem.Detail
	}
	return 0, fmt.Sprint(err)
}

// Tokens have roles and site scopes, are refused beyond them with 403
// naming what is missing, and a revoked token is refused on every node.
func TestScopedTokens(t *testing.T) {
	e := etcdtest.New(t)
	cfgA, cfgB := nodeConfig(t, e.Endpoint()), nodeConfig(t, e.Endpoint())
	cfgA.NodeName, cfgB.NodeName = "a", "b"
	a, b := startNode(t, cfgA), startNode(t, cfgB)
	ctx := context.Background()
	admin := a.api
	if _, err := admin.PutSite(ctx, state.Site{Domain: "x.team.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PutSite(ctx, state.Site{Domain: "other.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	create := func(req client.TokenRequest) client.CreatedToken {
		t.Helper()
		tok, err := admin.CreateToken(ctx, req)
		if err != nil {
			t.Fatalf("create %+v: %v", req, err)
		}
		if !strings.HasPrefix(tok.ID, "tok_") || tok.Secret == "" || tok.Creator == "" {
			t.Fatalf("created token: %+v", tok)
		}
		return tok
	}
	read := create(client.TokenRequest{Role: model.RoleRead, Label: "prometheus"})
	dep := create(client.TokenRequest{Role: model.RoleDeploy, Sites: []string{"*.team.test"}, Expires: "30d", Label: "ci"})
	asRead := client.New("http://"+cfgB.API.Listen, read.Secret)
	asDeploy := client.New("http://"+cfgB.API.Listen, dep.Secret)

	// Read: sees, changes nothing.
	b.eventually("node b accepts the new tokens", 5*time.Second, func() error {
		_, err := asRead.ListSites(ctx)
		return err
	})
	if _, err := asRead.Status(ctx); err != nil {
		t.Fatalf("read token, status: %v", err)
	}
	for what, call := range map[string]func() error{
		"add a site": func() error {
			_, err := asRead.PutSite(ctx, state.Site{Domain: "r.test"}, client.Precondition{})
			return err
		},
		"deploy": func() error {
			_, err := asRead.Deploy(ctx, "x.team.test", "web", "1", 0, client.Precondition{})
			return err
		},
		"create tokens": func() error {
			_, err := asRead.CreateToken(ctx, client.TokenRequest{Role: model.RoleAdmin})
			return err
		},
		"read audit": func() error { _, err := asRead.Audit(ctx, time.Time{}, 0); return err },
	} {
		if code, detail := problemOf(call()); code != http.StatusForbidden || !strings.Contains(detail, read.ID) || !strings.Contains(detail, "permission") {
			t.Errorf("read token may not %s: %d %q", what, code, detail)
		}
	}

	// Deploy: only within its sites, and no admin work.
	if code, detail := problemOf(func() error {
		_, err := asDeploy.Deploy(ctx, "other.test", "web", "1", 0, client.Precondition{})
		return err
	}()); code != http.StatusForbidden || !strings.Contains(detail, "*.team.test") {
		t.Errorf("deploy outside the token's sites: %d %q", code, detail)
	}
	if code, _ := problemOf(func() error {
		_, err := asDeploy.Deploy(ctx, "x.team.test", "web", "1", 0, client.Precondition{})
		return err
	}()); code == http.StatusForbidden || code == http.StatusUnauthorized {
		t.Errorf("deploy within the token's sites was refused: %d", code)
	}
	if code, _ := problemOf(func() error {
		_, err := asDeploy.PutSite(ctx, state.Site{Domain: "y.team.test"}, client.Precondition{})
		return err
	}()); code != http.StatusForbidden {
		t.Errorf("a deploy token added a site: %d", code)
	}
	// Peer endpoints take node credentials (and admin tokens) only.
	for _, tok := range []string{read.Secret, dep.Secret} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+cfgB.API.Listen+"/v1/objects/"+strings.Repeat("a", 64), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("peer endpoint with a %s token: %d", "non-node", resp.StatusCode)
		}
	}

	// The list shows role, scope, creator and expiry, never a secret.
	l, err := admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(l)
	if strings.Contains(string(raw), read.Secret) || strings.Contains(string(raw), dep.Secret) {
		t.Fatal("token list shows a token")
	}
	var found bool
	for _, tok := range l.Tokens {
		if tok.ID == dep.ID {
			found = tok.Role == model.RoleDeploy && strings.Join(tok.Sites, ",") == "*.team.test" && tok.ExpiresAt != nil && tok.Creator != "" && tok.Label == "ci"
		}
	}
	if !found {
		t.Fatalf("token list: %s", raw)
	}

	// Revoked through node a, refused by node b.
	if err := admin.RevokeToken(ctx, dep.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b.eventually("node b refuses the revoked token", 5*time.Second, func() error {
		if _, err := asDeploy.ListSites(ctx); client.StatusOf(err) != http.StatusUnauthorized {
			return fmt.Errorf("still accepted: %v", err)
		}
		return nil
	})
	t.Logf("node b refused the revoked token %s after the revocation", time.Since(start).Round(time.Millisecond))
}

// Malformed token requests are 4xx with a reason and create nothing.
func TestTokenRequestsValidated(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	var before client.TokenList
	n.eventually("the node's own token is registered", 10*time.Second, func() error {
		var err error
		if before, err = n.api.ListTokens(ctx); err == nil && len(before.Tokens) == 0 {
			err = fmt.Errorf("not yet")
		}
		return err
	})
	for _, req := range []client.TokenRequest{
		{Role: "root"},
		{Role: ""},
		{Role: model.RoleNode},
		{Role: model.RoleRead, Sites: []string{"a.test"}},
		{Role: model.RoleDeploy, Sites: []string{"a/b"}},
		{Role: model.RoleDeploy, Sites: []string{"[a-"}},
		{Role: model.RoleDeploy, Sites: []string{""}},
		{Role: model.RoleRead, Expires: "-1d"},
		{Role: model.RoleRead, Expires: "forever"},
		{Role: model.RoleRead, Expires: "99999d"},
		{Role: model.RoleRead, Label: "line\nbreak"},
		{Role: model.RoleRead, Label: strings.Repeat("x", 201)},
		{Role: model.RoleDeploy, Sites: manyPatterns(101)},
	} {
		if code, detail := problemOf(func() error { _, err := n.api.CreateToken(ctx, req); return err }()); code != http.StatusUnprocessableEntity || detail == "" {
			t.Errorf("%+v: %d %q", req, code, detail)
		}
	}
	// Bodies that are not a token request at all.
	for _, body := range []string{"", "{", `{"role": 7}`, `["admin"]`, `{"role":"read","unknown":1}`, strings.Repeat(`{"label":"x",`, 1<<16)} {
		if code, p := n.rawRequest(t, http.MethodPost, "/v1/tokens", body, nil); code < 400 || code >= 500 || p.Detail == "" {
			t.Errorf("POST /v1/tokens %.40q: %d %q", body, code, p.Detail)
		}
	}
	for id, want := range map[string]int{"../x": 422, "tok_zz": 422, "tok_0000000000000000": 404} {
		if code, _ := problemOf(n.api.RevokeToken(ctx, id)); code != want {
			t.Errorf("revoke %q: %d, want %d", id, code, want)
		}
	}
	after, err := n.api.ListTokens(ctx)
	if err != nil || len(after.Tokens) != len(before.Tokens) {
		t.Fatalf("tokens changed: %d -> %d (%v)", len(before.Tokens), len(after.Tokens), err)
	}
}

func manyPatterns(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("s%d.example.com", i)
	}
	return out
}

// An expired token is refused with a message that says so.
func TestExpiredTokenRefused(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	tok, err := n.api.CreateToken(ctx, client.TokenRequest{Role: model.RoleRead, Expires: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New("http://"+n.cfg.API.Listen, tok.Secret)
	if _, err := c.ListSites(ctx); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if code, detail := problemOf(func() error { _, err := c.ListSites(ctx); return err }()); code != http.StatusUnauthorized || !strings.Contains(detail, "expired") {
		t.Fatalf("after expiry: %d %q", code, detail)
	}
}

// A node's credential towards its peers lives on its lease: it is in
// etcd while the node runs and gone when it stops.
func TestNodeCredentialDiesWithTheNode(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	cli := e.Client(t)
	key := n.cfg.State.Etcd.KeyPrefix + "/auth/nodes/" + n.cfg.NodeName
	n.eventually("the credential is registered", 10*time.Second, func() error {
		resp, err := cli.Get(context.Background(), key)
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
			return fmt.Errorf("%v %v", resp, err)
		}
		return nil
	})
	n.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := cli.Get(context.Background(), key)
		if err == nil && len(resp.Kvs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the credential outlived its node: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every change through the API is in the audit trail with token, role,
// source, action, target and result; reads are not, and no secret is.
func TestAuditTrail(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "audited.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	read, err := n.api.CreateToken(ctx, client.TokenRequest{Role: model.RoleRead})
	if err != nil {
		t.Fatal(err)
	}
	asRead := client.New("http://"+n.cfg.API.Listen, read.Secret)
	_, _ = asRead.DeleteSite(ctx, "audited.test", client.Precondition{}) // 403
	_, _ = asRead.ListSites(ctx)                                         // a read: not recorded
	_, _ = client.New("http://"+n.cfg.API.Listen, "wrong").DeleteSite(ctx, "audited.test", client.Precondition{})

	var l client.AuditList
	n.eventually("the entries are written", 10*time.Second, func() error {
		l, err = n.api.Audit(ctx, time.Now().Add(-time.Hour), 0)
		if err != nil {
			return err
		}
		if len(l.Entries) < 3 {
			return fmt.Errorf("%d entries", len(l.Entries))
		}
		return nil
	})
	raw, _ := json.Marshal(l)
	if strings.Contains(string(raw), read.Secret) || strings.Contains(string(raw), n.waitToken()) {
		t.Fatal("the audit trail holds a token")
	}
	want := []struct {
		action, target string
		role           model.Role
		status         int
	}{
		{"PUT /v1/sites/{domain}", "domain=audited.test", model.RoleAdmin, 200},
		{"POST /v1/tokens", "", model.RoleAdmin, 201},
		{"DELETE /v1/sites/{domain}", "domain=audited.test", model.RoleRead, 403},
	}
	if len(l.Entries) != len(want) {
		t.Fatalf("entries: %s", raw)
	}
	for i, w := range want {
		got := l.Entries[i]
		if got.Action != w.action || got.Target != w.target || got.Role != w.role || got.Status != w.status || got.Source != "127.0.0.1" || got.Node != n.cfg.NodeName || !strings.HasPrefix(got.TokenID, "tok_") {
			t.Errorf("entry %d: %+v, want %+v", i, got, w)
		}
	}
	if l.Entries[2].TokenID != read.ID || !strings.Contains(l.Entries[2].Error, "permission") {
		t.Errorf("the refused change: %+v", l.Entries[2])
	}
	for _, q := range []string{"since=yesterday", "since=2026-13-01T00:00:00Z", "limit=0", "limit=10001", "limit=-1", "limit=x"} {
		if code, p := n.rawRequest(t, http.MethodGet, "/v1/audit?"+q, "", nil); code != http.StatusBadRequest || p.Detail == "" {
			t.Errorf("GET /v1/audit?%s: %d %q", q, code, p.Detail)
		}
	}
}

// token create prints the token once; token list, token revoke and audit
// work from the CLI.
func TestTokenAndAuditCLI(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	out, err := n.cli("token", "create", "--role", "deploy", "--sites", "*.ci.test", "--expires", "7d", "--label", "ci", "-o", "json")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	var created client.CreatedToken
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" || created.Role != model.RoleDeploy {
		t.Fatalf("token create -o json: %v\n%s", err, out)
	}
	out, err = n.cli("token", "list")
	if err != nil || !strings.Contains(out, created.ID) || !strings.Contains(out, "*.ci.test") || strings.Contains(out, created.Secret) {
		t.Fatalf("token list: %v\n%s", err, out)
	}
	if out, err = n.cli("token", "revoke", created.ID); err != nil {
		t.Fatalf("token revoke: %v\n%s", err, out)
	}
	if out, err := n.cli("token", "create", "--role", "superuser"); err == nil || !strings.Contains(err.Error(), "must be one of read, deploy, admin") {
		t.Fatalf("token create with a bad role: %v\n%s", err, out)
	}
	n.eventually("the audit trail shows the revocation", 10*time.Second, func() error {
		out, err := n.cli("audit", "--since", "1h")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "DELETE /v1/tokens/{id}") || !strings.Contains(out, "id="+created.ID) {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
}
