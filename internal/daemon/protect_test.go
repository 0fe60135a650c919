package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/internal/etcdtest"
	"github.com/sitefleet/sitefleet/state"
	"github.com/sitefleet/sitefleet/webserver"
)

// getAs requests host/path from nginx with basic credentials ("" for none).
func (n *testNode) getAs(host, path, user, pass string) (int, string, http.Header) {
	n.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+n.cfg.Web.HTTPListen+path, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Host = host
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		n.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), resp.Header
}

// reloads is the node's sitefleet_nginx_reloads_total.
func (n *testNode) reloads() string {
	for _, l := range strings.Split(n.metrics(), "\n") {
		if v, ok := strings.CutPrefix(l, "sitefleet_nginx_reloads_total "); ok {
			return v
		}
	}
	n.t.Fatal("no sitefleet_nginx_reloads_total")
	return ""
}

// Protected sites end to end: a site's users and paths, a bundle's
// Basic-Auth lines, previews; users change without a reload; hostile
// spellings of a protected path still ask; bad input changes nothing.
func TestProtectedSites(t *testing.T) {
	e := etcdtest.New(t)
	cfg := nodeConfig(t, e.Endpoint())
	cfg.Previews.Domain = "previews.test"
	n := startNode(t, cfg)
	ctx := context.Background()
	for _, d := range []string{"app.test", "team.test"} {
		if _, err := n.api.PutSite(ctx, state.Site{Domain: d}, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	files := page("1")
	files["admin/index.html"] = "admin\n"
	files["team/index.html"] = "team\n"
	files["_headers"] = "/team/*\n  Basic-Auth: carol:s3cret dave:pa55\n  X-Team: yes\n"
	n.upload(t, "web", "1", tarGz(t, files), "")
	for _, d := range []string{"app.test", "team.test"} {
		if _, err := n.api.Deploy(ctx, d, "web", "1", 10*time.Second, client.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}

	if out, err := n.cli("site", "protect", "app.test", "--user", "alice:wonderland", "--path", "/admin/*"); err != nil {
		t.Fatalf("site protect: %v\n%s", err, out)
	}
	n.waitAnswer("app.test/admin/ to ask for a login", "app.test", "/admin/", 15*time.Second, 401, func(string) bool { return true })
	code, body, hdr := n.getAs("app.test", "/admin/", "", "")
	if code != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), `Basic realm="app.test"`) || strings.Contains(body, "admin") {
		t.Errorf("no credentials: %d %q %v", code, body, hdr)
	}
	for _, path := range []string{"/admin/index.html", "/%61dmin/", "//admin/", "/x/../admin/", "/admin", "/./admin/index.html"} {
		if code, body, _ := n.getAs("app.test", path, "", ""); code != 401 && code != 400 || strings.Contains(body, "admin\n") {
			t.Errorf("GET %s without credentials: %d %q", path, code, body)
		}
	}
	// Targets Go's client would not send as they are: a literal "#" ends
	// the path for nginx.
	for _, target := range []string{"/admin/#/../../", "/admin/index.html#/../../x", "/admin#"} {
		conn, err := net.Dial("tcp", cfg.Web.HTTPListen)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n", target)
		status, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || !strings.Contains(status, " 401 ") && !strings.Contains(status, " 400 ") {
			t.Errorf("raw GET %s without credentials: %q %v", target, status, err)
		}
	}
	if code, _, _ := n.getAs("app.test", "/admin/", "alice", "nope"); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	if code, _, _ := n.getAs("app.test", "/admin/", "mallory", "wonderland"); code != 401 {
		t.Errorf("unknown user: %d", code)
	}
	if code, body, _ := n.getAs("app.test", "/admin/", "alice", "wonderland"); code != 200 || body != "admin\n" {
		t.Errorf("alice: %d %q", code, body)
	}
	if code, body, _ := n.getAs("app.test", "/", "", ""); code != 200 || body != "<p>version 1</p>\n" {
		t.Errorf("an open path: %d %q", code, body)
	}
	if code, _, _ := n.getAs("app.test", webserver.HealthPath, "", ""); code != 200 {
		t.Errorf("readiness on a protected site: %d", code)
	}
	if out, err := n.cli("site", "get", "app.test"); err != nil || !strings.Contains(out, "basic auth on /admin/*, users alice") {
		t.Errorf("site get: %v\n%s", err, out)
	}

	// Only admin tokens read the hashes.
	out, err := n.cli("token", "create", "--role", "read", "-o", "json")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	var reader client.CreatedToken
	if err := json.Unmarshal([]byte(out), &reader); err != nil {
		t.Fatal(err)
	}
	readOnly := client.New("http://"+cfg.API.Listen, reader.Secret)
	if s, err := readOnly.GetSite(ctx, "app.test"); err != nil || s.Options.Protection == nil || s.Options.Protection.Users[0].Hash != "(hidden)" {
		t.Errorf("a read token's view of a protected site: %+v %v", s.Options.Protection, err)
	}
	if l, err := readOnly.ListSites(ctx); err != nil || strings.Contains(fmt.Sprint(l), "$2a$") {
		t.Errorf("a read token's list shows hashes: %v", err)
	}
	if s, err := n.api.GetSite(ctx, "app.test"); err != nil || !strings.HasPrefix(s.Options.Protection.Users[0].Hash, "$2a$") {
		t.Errorf("an admin's view: %+v %v", s.Options.Protection, err)
	}

	// New users: served without a reload.
	before := n.reloads()
	if out, err := n.cli("site", "protect", "app.test", "--user", "bob:builder", "--path", "/admin/*"); err != nil {
		t.Fatalf("site protect: %v\n%s", err, out)
	}
	n.eventually("bob to get in", 10*time.Second, func() error {
		if code, _, _ := n.getAs("app.test", "/admin/", "bob", "builder"); code != 200 {
			return fmt.Errorf("bob: %d", code)
		}
		return nil
	})
	if code, _, _ := n.getAs("app.test", "/admin/", "alice", "wonderland"); code != 401 {
		t.Errorf("alice after she was removed: %d", code)
	}
	if after := n.reloads(); after != before {
		t.Errorf("changing users reloaded nginx: %s -> %s", before, after)
	}

	// A bundle's Basic-Auth lines: a login on its paths, never a header.
	if code, body, hdr := n.getAs("team.test", "/team/", "", ""); code != 401 || strings.Contains(body, "team") || hdr.Get("Basic-Auth") != "" {
		t.Errorf("team without credentials: %d %q %v", code, body, hdr)
	}
	code, body, hdr = n.getAs("team.test", "/team/", "carol", "s3cret")
	if code != 200 || body != "team\n" || hdr.Get("X-Team") != "yes" || hdr.Get("Basic-Auth") != "" {
		t.Errorf("carol: %d %q %v", code, body, hdr)
	}
	if code, _, _ := n.getAs("team.test", "/team/", "carol", "pa55"); code != 401 {
		t.Errorf("carol with dave's password: %d", code)
	}
	if code, _, _ := n.getAs("team.test", "/", "", ""); code != 200 {
		t.Errorf("team.test /: %d", code)
	}

	// Previews: protected with the site; previews-only leaves it open.
	if _, err := n.api.DeployPreview(ctx, "team.test", "pr1", "web", "1", "", 10*time.Second, client.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if out, err := n.cli("site", "protect", "team.test", "--user", "erin:preview", "--previews-only"); err != nil {
		t.Fatalf("site protect --previews-only: %v\n%s", err, out)
	}
	n.waitAnswer("the preview to ask for a login", "pr1--team-test.previews.test", "/", 15*time.Second, 401, func(string) bool { return true })
	if code, _, hdr := n.getAs("pr1--team-test.previews.test", "/", "erin", "preview"); code != 200 || hdr.Get("X-Robots-Tag") != "noindex" {
		t.Errorf("erin on the preview: %d %v", code, hdr)
	}
	if code, _, _ := n.getAs("team.test", "/", "", ""); code != 200 {
		t.Errorf("the live site with previews-only: %d", code)
	}

	// Bad input: 422, nothing changed.
	site, _ := n.api.GetSite(ctx, "app.test")
	low, _ := bcrypt.GenerateFromPassword([]byte("x"), 4)
	c9, _ := bcrypt.GenerateFromPassword([]byte("x"), 9)
	c10, _ := bcrypt.GenerateFromPassword([]byte("x"), 10)
	for _, bad := range []*state.Protection{
		{Users: []state.BasicUser{{Name: "eve", Hash: "clear-text-password"}}},
		{Users: []state.BasicUser{{Name: "eve", Hash: string(low)}}},
		{Users: []state.BasicUser{{Name: "eve", Hash: string(c9)}, {Name: "fay", Hash: string(c10)}}},
		{Users: []state.BasicUser{{Name: "e:ve", Hash: string(c10)}}},
		{Users: []state.BasicUser{{Name: "eve", Hash: string(c10)}, {Name: "eve", Hash: string(c10)}}},
		{Users: []state.BasicUser{{Name: "eve", Hash: string(c10)}}, Paths: []string{"/../x"}},
		{Users: []state.BasicUser{{Name: "eve", Hash: string(c10)}}, Paths: []string{"/a/*"}, PreviewsOnly: true},
		{},
	} {
		s := site
		s.Options.Protection = bad
		if _, err := n.api.PutSite(ctx, s, client.Precondition{}); client.StatusOf(err) != http.StatusUnprocessableEntity {
			t.Errorf("protection %+v: %v, want 422", bad, err)
		}
	}
	if after, _ := n.api.GetSite(ctx, "app.test"); after.Revision != site.Revision {
		t.Errorf("bad input changed the site")
	}

	// Unprotect: open again.
	if out, err := n.cli("site", "unprotect", "app.test"); err != nil {
		t.Fatalf("site unprotect: %v\n%s", err, out)
	}
	n.waitBody("app.test", "/admin/", "admin\n")
}
