package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
)

// TestManifestRules checks every _redirects and _headers feature through
// nginx.
func TestManifestRules(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "rules.test", Aliases: []string{"www.rules.test"}}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"index.html":     "home\n",
		"new.html":       "new\n",
		"forced.html":    "forced\n",
		"shadowed.html":  "shadowed file\n",
		"kept.html":      "kept file\n",
		"other.html":     "other\n",
		"gone-page.html": "gone page\n",
		"404.html":       "custom 404\n",
		"app/index.html": "spa shell\n",
		"assets/app.css": "css\n",
		"_redirects": `# comments and blank lines are fine

/old                 /new.html             301
/blog/:year/:slug    /posts/:year-:slug    302
/docs/*              /v2/:splat            307
/shadowed            /forced.html          200!
/kept                /other.html           200
/ext                 https://example.com/x?a=1  308
/gone                /gone-page.html       404
/app/*               /app/index.html       200
/u/:name             /users/:name          301
/p/:abcdefghijklmnopqrstuvwxyz_12345 /q/:abcdefghijklmnopqrstuvwxyz_12345 301
/go/*                /:splat               302!
`,
		"_headers": `/assets/*
  Cache-Control: public, max-age=31536000, immutable
  X-Test: assets
/*
  X-Frame-Options: DENY
  Content-Security-Policy: default-src 'self'; img-src *
`,
	}
	n.upload(t, "rules", "1", tarGz(t, files), "")
	if _, err := n.api.Deploy(ctx, "rules.test", "rules", "1", 10*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitBody("rules.test", "/", "home\n")
	cases := []struct {
		path, host     string
		code           int
		body, location string
	}{
		{"/old", "", 301, "", "/new.html"},
		{"/old/", "", 301, "", "/new.html"},
		{"/blog/2024/hello", "", 302, "", "/posts/2024-hello"},
		{"/docs/a/b", "", 307, "", "/v2/a/b"},
		{"/shadowed", "", 200, "forced\n", ""},
		{"/kept", "", 200, "kept file\n", ""},
		{"/ext", "", 308, "", "https://example.com/x?a=1"},
		{"/gone", "", 404, "gone page\n", ""},
		{"/app/some/deep/link", "", 200, "spa shell\n", ""},
		{"/missing", "", 404, "custom 404\n", ""},
		{"/new", "www.rules.test", 200, "new\n", ""},
		{"/u/ann", "", 301, "", "/users/ann"},
		{"/p/x", "", 301, "", "/q/x"},
		{"/go/a/b", "", 302, "", "/a/b"},
		{"/_redirects", "", 404, "custom 404\n", ""},
		{"/_headers", "", 404, "custom 404\n", ""},
		// Hostile captures do not match: no injected header, no other host.
		{"/u/a%0d%0aSet-Cookie:%20x=y", "", 404, "custom 404\n", ""},
		{"/go/%5Cevil.example/", "", 404, "custom 404\n", ""},
	}
	for _, tc := range cases {
		host := tc.host
		if host == "" {
			host = "rules.test"
		}
		code, body, hdr, err := n.get(host, tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || (tc.body != "" && body != tc.body) || hdr.Get("Location") != tc.location {
			t.Errorf("%s%s = %d %q Location %q; want %d %q %q", host, tc.path, code, body, hdr.Get("Location"), tc.code, tc.body, tc.location)
		}
	}
	_, _, hdr, _ := n.get("rules.test", "/assets/app.css")
	if got := hdr.Get("Cache-Control"); got != "public, max-age=31536000, immutable" || hdr.Get("X-Test") != "assets" || hdr.Get("X-Frame-Options") != "DENY" {
		t.Errorf("asset headers: Cache-Control %q X-Test %q X-Frame-Options %q", got, hdr.Get("X-Test"), hdr.Get("X-Frame-Options"))
	}
	_, _, hdr, _ = n.get("rules.test", "/")
	if got := hdr.Get("Cache-Control"); got != "public, max-age=0, must-revalidate" || hdr.Get("Content-Security-Policy") != "default-src 'self'; img-src *" || hdr.Get("X-Test") != "" {
		t.Errorf("page headers: Cache-Control %q CSP %q X-Test %q", got, hdr.Get("Content-Security-Policy"), hdr.Get("X-Test"))
	}
}

// hugeHeaders is a _headers file within every parser limit (under 1 MiB,
// 195 rules of 5 headers) whose rules would generate more than the 1 MiB
// of nginx config one bundle may.
func hugeHeaders() string {
	var b strings.Builder
	value := strings.Repeat("v", 1024)
	for i := range 195 {
		fmt.Fprintf(&b, "/%s%03d\n", strings.Repeat("p", 60), i)
		for h := range 5 {
			fmt.Fprintf(&b, "  X-H%d: %s\n", h, value)
		}
	}
	return b.String()
}

func TestManifestRefusedAtUpload(t *testing.T) {
	e := etcdtest.New(t)
	n := startNode(t, nodeConfig(t, e.Endpoint()))
	ctx := context.Background()
	for name, tc := range map[string]struct {
		file, body, want string
	}{
		"directive injection": {"_redirects", "/a /b 301\n/x /y; root /etc 301\n", "_redirects line 2"},
		"variable":            {"_redirects", "/a /$host 302\n", "_redirects line 1"},
		"unsupported status":  {"_redirects", "/a /b 418\n", "_redirects line 1"},
		"country condition":   {"_redirects", "/a /b 302 Country=us\n", "_redirects line 1"},
		"header brace":        {"_headers", "/*\n  X-A: b}\n", "_headers line 2"},
		"header quote":        {"_headers", "/*\n  X-A: \"q\"\n", "_headers line 2"},
		"hop-by-hop header":   {"_headers", "/*\n  X-Ok: 1\n  Connection: close\n", "_headers line 3"},
		"encoded slash":       {"_redirects", "/a /b 301\n/a%2Fb /c 301\n", "_redirects line 2"},
		"encoded CR":          {"_headers", "/a%0d\n  X-A: b\n", "_headers line 1"},
		"rules over the cap":  {"_headers", hugeHeaders(), "bytes of nginx config"},
	} {
		t.Run(name, func(t *testing.T) {
			archive := tarGz(t, map[string]string{"index.html": "x\n", tc.file: tc.body})
			_, err := n.api.UploadBundle(ctx, "bad", "1", strings.NewReader(string(archive)), "", "")
			if client.StatusOf(err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("upload: %v, want 422 naming %q", err, tc.want)
			}
		})
	}
	if list, err := n.api.ListBundles(ctx, ""); err != nil || len(list.Bundles) != 0 {
		t.Fatalf("refused bundles were recorded: %+v %v", list.Bundles, err)
	}
}
