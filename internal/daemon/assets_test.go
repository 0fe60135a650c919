package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// TestKeepAssets: a site that keeps old assets serves the hashed assets
// of the deployment it replaced, under its patterns only, until the window
// ends; pages the new deployment removed stay gone.
func TestKeepAssets(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	site := state.Site{Domain: "assets.test", Options: state.SiteOptions{KeepAssets: &state.KeepAssets{Paths: []string{"/assets/*"}, WindowSeconds: 600}}}
	if _, err := n.api.PutSite(ctx, site, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.upload(t, "web", "1", tarGz(t, map[string]string{
		"index.html": "v1", "assets/app.1.js": "js 1", "assets/shared.css": "css 1", "old.html": "old page",
	}), "")
	n.upload(t, "web", "2", tarGz(t, map[string]string{
		"index.html": "v2", "assets/app.2.js": "js 2", "assets/shared.css": "css 2",
	}), "")
	for _, v := range []string{"1", "2"} {
		if _, err := n.api.Deploy(ctx, "assets.test", "web", v, 10*time.Second, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	n.waitBody("assets.test", "/", "v2")
	n.waitBody("assets.test", "/assets/app.2.js", "js 2")
	n.waitBody("assets.test", "/assets/app.1.js", "js 1")    // kept: under /assets/, lacking in v2
	n.waitBody("assets.test", "/assets/shared.css", "css 2") // v2 has it: v2's
	n.waitAnswer("old.html stays removed", "assets.test", "/old.html", 5*time.Second, 404, func(string) bool { return true })

	// The window of v1 ends a second from now: its asset goes.
	doc, err := n.api.GetState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range doc.Sites {
		if doc.Sites[i].Domain == "assets.test" {
			doc.Sites[i].Deployment.DeployedAt = time.Now().Add(-599 * time.Second).UTC()
		}
	}
	if _, err := n.api.PutState(ctx, doc, false); err != nil {
		t.Fatal(err)
	}
	n.waitAnswer("app.1.js gone once the window ended", "assets.test", "/assets/app.1.js", 15*time.Second, 404, func(string) bool { return true })
	n.waitBody("assets.test", "/assets/app.2.js", "js 2")
	n.waitBody("assets.test", "/", "v2")

}
