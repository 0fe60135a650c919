package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// Deploy previews end to end: a preview serves its bundle at its own host
// (HTTP and HTTPS with an imported wildcard certificate, never indexed,
// with the bundle's rules) while the live site is untouched; --wait works;
// promote makes it live; remove and expiry take it away; bad input is
// refused with nothing changed.
func TestPreviews(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.Previews.Domain = "previews.test"
	cfg.Previews.Certificate = "previews"
	n := startNode(t, cfg)
	ctx := context.Background()

	chain, key, err := sftls.SelfSigned([]string{"*.previews.test"}, 90*24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.ImportCertificate(ctx, client.CertImport{ID: "previews", Chain: string(chain), Key: string(key)}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "app.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.upload(t, "web", "1", tarGz(t, page("1")), "")
	v2 := page("2")
	v2["_redirects"] = "/old /about 301\n"
	n.upload(t, "web", "2", tarGz(t, v2), "")
	if _, err := n.api.Deploy(ctx, "app.test", "web", "1", 10*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}

	out, err := n.cli("deploy", "app.test", "web@2", "--preview", "--expires", "7d", "--wait", "10s")
	if err != nil {
		t.Fatalf("deploy --preview: %v\n%s", err, out)
	}
	host := "2--app-test.previews.test"
	if !strings.Contains(out, host) || !strings.Contains(out, "serving") {
		t.Errorf("deploy --preview said:\n%s", out)
	}
	// Served at once (the wait answered), beside the untouched live site.
	code, body, hdr, err := n.get(host, "/")
	if err != nil || code != 200 || body != "<p>version 2</p>\n" || hdr.Get("X-Robots-Tag") != "noindex" {
		t.Fatalf("preview right after deploy --wait: %d %q %v %v", code, body, hdr, err)
	}
	if code, _, hdr, _ := n.get(host, "/old"); code != 301 || hdr.Get("Location") != "/about" || hdr.Get("X-Robots-Tag") != "noindex" {
		t.Errorf("preview's _redirects: %d %v", code, hdr)
	}
	n.waitBody("app.test", "/", "<p>version 1</p>\n")
	if _, _, hdr, _ := n.get("app.test", "/"); hdr.Get("X-Robots-Tag") != "" {
		t.Errorf("the live site answers X-Robots-Tag %q", hdr.Get("X-Robots-Tag"))
	}
	roots := poolOf(t, string(chain))
	n.eventually("the preview over HTTPS", 10*time.Second, func() error {
		resp, body, err := n.getHTTPS(host, "/", roots)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || body != "<p>version 2</p>\n" || resp.Header.Get("X-Robots-Tag") != "noindex" {
			return fmt.Errorf("HTTPS: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		return nil
	})
	site, err := n.api.GetSite(ctx, "app.test")
	if err != nil || len(site.Previews) != 1 || site.Previews[0].ExpiresAt == nil || time.Until(*site.Previews[0].ExpiresAt) < 6*24*time.Hour {
		t.Fatalf("site: %+v %v", site, err)
	}
	if out, err := n.cli("site", "get", "app.test"); err != nil || !strings.Contains(out, "2: web@2 at "+host) {
		t.Errorf("site get: %v\n%s", err, out)
	}

	// Bad input: 4xx, nothing changed.
	before, _ := n.api.GetSite(ctx, "app.test")
	for _, bad := range []struct {
		method, path, body string
		status             int
	}{
		{"PUT", "/v1/sites/app.test/previews/Bad", `{"app":"web","version":"2"}`, 422},
		{"PUT", "/v1/sites/app.test/previews/a--b", `{"app":"web","version":"2"}`, 422},
		{"PUT", "/v1/sites/app.test/previews/x", `{"app":"web","version":"9"}`, 404},
		{"PUT", "/v1/sites/app.test/previews/x", `{"app":"web","version":"2","expires":"forever"}`, 400},
		{"PUT", "/v1/sites/app.test/previews/x", `{"app":"web","version":"2","expires":"400d"}`, 400},
		{"PUT", "/v1/sites/app.test/previews/x", `{"app":"web","version":"2","expires":"1s"}`, 400},
		{"PUT", "/v1/sites/app.test/previews/" + strings.Repeat("a", 33), `{"app":"web","version":"2"}`, 422},
		{"PUT", "/v1/sites/nope.test/previews/x", `{"app":"web","version":"2"}`, 404},
		{"POST", "/v1/sites/app.test/previews/nope/promote", ``, 404},
		{"DELETE", "/v1/sites/app.test/previews/nope", ``, 404},
		{"PUT", "/v1/sites/x.previews.test", `{}`, 422},
		{"PUT", "/v1/sites/other.test", `{"aliases":["2--app-test.previews.test"]}`, 422},
	} {
		if code, p := n.rawRequest(t, bad.method, bad.path, bad.body, nil); code != bad.status {
			t.Errorf("%s %s %s: %d (%s), want %d", bad.method, bad.path, bad.body, code, p.Detail, bad.status)
		}
	}
	if after, _ := n.api.GetSite(ctx, "app.test"); after.Revision != before.Revision {
		t.Errorf("bad input changed the site: revision %d -> %d", before.Revision, after.Revision)
	}

	// Promote: the live site serves the preview's bundle; the preview stays.
	if out, err := n.cli("promote", "app.test", "2", "--wait", "10s"); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	n.waitBody("app.test", "/", "<p>version 2</p>\n")
	n.waitBody(host, "/", "<p>version 2</p>\n")

	// Remove by hand.
	if out, err := n.cli("preview", "rm", "app.test", "2"); err != nil {
		t.Fatalf("preview rm: %v\n%s", err, out)
	}
	n.waitUnknown(host)

	// Expiry: the leader removes a preview whose time is up.
	if _, err := n.api.DeployPreview(ctx, "app.test", "soon", "web", "1", "1m", 10*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.waitBody("soon--app-test.previews.test", "/", "<p>version 1</p>\n")
	// Bring its expiry forward behind the API's back, as time passing would.
	doc, err := n.api.GetState(ctx)
	if err != nil || len(doc.Sites) != 1 || len(doc.Sites[0].Previews) != 1 {
		t.Fatalf("state: %+v %v", doc, err)
	}
	past := time.Now().Add(-time.Second).UTC()
	doc.Sites[0].Previews[0].ExpiresAt = &past
	if _, err := n.api.PutState(ctx, doc, false); err != nil {
		t.Fatal(err)
	}
	n.eventually("the expired preview to leave the record", 45*time.Second, func() error {
		s, err := n.api.GetSite(ctx, "app.test")
		if err != nil || len(s.Previews) != 0 {
			return fmt.Errorf("previews %+v %v", s.Previews, err)
		}
		return nil
	})
	n.waitUnknown("soon--app-test.previews.test")
	if code, _, _, _ := n.get("app.test", "/"); code != http.StatusOK {
		t.Errorf("the live site after the preview expired: %d", code)
	}
}

// With previews.selfSigned the node serves previews over HTTPS with a
// certificate for *.<domain> it made itself.
func TestPreviewsSelfSigned(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.Previews.Domain = "previews.test"
	cfg.Previews.SelfSigned = true
	n := startNode(t, cfg)
	ctx := context.Background()
	if _, err := n.api.PutSite(ctx, state.Site{Domain: "app.test"}, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.upload(t, "web", "1", tarGz(t, page("1")), "")
	if _, err := n.api.DeployPreview(ctx, "app.test", "x", "web", "1", "0", 10*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	n.eventually("the preview over HTTPS", 10*time.Second, func() error {
		conn, err := tls.Dial("tcp", cfg.Web.HTTPSListen, &tls.Config{ServerName: "x--app-test.previews.test", InsecureSkipVerify: true})
		if err != nil {
			return err
		}
		defer conn.Close()
		if names := conn.ConnectionState().PeerCertificates[0].DNSNames; len(names) != 1 || names[0] != "*.previews.test" {
			return fmt.Errorf("certificate for %v", names)
		}
		return nil
	})
}
