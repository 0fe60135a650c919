package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/state"
)

// getAs requests / from a node's nginx with a Host and basic credentials
// ("" for none), and returns the status and X-Robots-Tag.
func (n *node) getAs(host, user, pass string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+n.http+"/", nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Robots-Tag"), nil
}

// A preview deployed through one node, with --wait, is served by every
// node when the call returns; protection set through another node asks
// for a login on every node, and new users apply everywhere without a
// reload.
func TestPreviewsAndProtectionAcrossNodes(t *testing.T) {
	f := newFleetWith(t, fleetOptions{extra: func(int) string { return "previews:\n  domain: previews.test\n" }})
	ctx := context.Background()
	addSite(t, f.client(0), "app.test")
	if _, err := f.client(0).UploadBundle(ctx, "web", "1", bytes.NewReader(bundle(t, "1")), "", ""); err != nil {
		t.Fatal(err)
	}
	res, err := f.client(1).DeployPreview(ctx, "app.test", "pr-7", "web", "1", "", 30*time.Second, client.Precondition{})
	if err != nil || res.Wait == nil || !res.Wait.Done {
		t.Fatalf("deploy --preview --wait: %+v %v", res.Wait, err)
	}
	host := "pr-7--app-test.previews.test"
	for _, n := range f.nodes {
		if code, robots, err := n.getAs(host, "", ""); err != nil || code != 200 || robots != "noindex" {
			t.Errorf("%s right after the wait: %d %q %v", n.name, code, robots, err)
		}
	}

	hash := func(pass string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pass), 8)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	protect := func(via int, user, pass string) {
		t.Helper()
		site, err := f.client(via).GetSite(ctx, "app.test")
		if err != nil {
			t.Fatal(err)
		}
		site.Options.Protection = &state.Protection{Users: []state.BasicUser{{Name: user, Hash: hash(pass)}}}
		if _, err := f.client(via).PutSite(ctx, site, client.Precondition{IfMatch: site.Revision}); err != nil {
			t.Fatal(err)
		}
	}
	allAnswer := func(what, host, user, pass string, want int) {
		t.Helper()
		f.eventually(what, 20*time.Second, func() error {
			for _, n := range f.nodes {
				if code, _, err := n.getAs(host, user, pass); err != nil || code != want {
					return fmt.Errorf("%s: %d %v, want %d", n.name, code, err, want)
				}
			}
			return nil
		})
	}
	protect(2, "alice", "wonderland")
	for _, h := range []string{"app.test", host} {
		allAnswer(h+" asks every node for a login", h, "", "", 401)
		allAnswer("alice gets into "+h, h, "alice", "wonderland", 200)
	}
	reloads := make([]int64, len(f.nodes))
	for i := range f.nodes {
		st, err := f.client(i).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		reloads[i] = st.Nginx.Reloads
	}
	protect(0, "bob", "builder")
	allAnswer("bob gets in everywhere", "app.test", "bob", "builder", 200)
	allAnswer("alice is out everywhere", "app.test", "alice", "wonderland", 401)
	for i := range f.nodes {
		if st, err := f.client(i).Status(ctx); err != nil || st.Nginx.Reloads != reloads[i] {
			t.Errorf("%s reloaded nginx for new users: %d -> %d (%v)", f.nodes[i].name, reloads[i], st.Nginx.Reloads, err)
		}
	}
}
