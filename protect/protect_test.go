package protect

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), 8)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func checker(t *testing.T) *Checker {
	alice := hash(t, "wonderland")
	return New(Options{HostHeader: "H", URIHeader: "U", Gates: func(host string) (Gate, bool) {
		if host != "a.test" {
			return Gate{}, false
		}
		return Gate{Realm: "a.test", Logins: func(p string) []Login {
			switch {
			case strings.HasPrefix(p, "/admin/") || p == "/admin":
				return []Login{{User: "alice", Hash: alice}, {User: "bob", Password: "builder"}}
			case p == "/team.html":
				return []Login{{User: "bob", Password: "builder"}}
			case p == "/locked/":
				return []Login{{}} // a bundle whose logins could not be read
			case p == "/both":
				return []Login{{User: "bob", Hash: alice}, {User: "bob", Password: "builder"}}
			}
			return nil
		}}, true
	}})
}

func ask(c *Checker, host, target, user, pass string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/v1/auth/check", nil)
	r.Header.Set("H", host)
	r.Header.Set("U", target)
	if user != "" || pass != "" {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	return w
}

// What is protected is decided on the path as nginx resolves it, so no
// spelling of a protected path gets through without a login.
func TestChecker(t *testing.T) {
	c := checker(t)
	for _, tc := range []struct {
		host, target, user, pass string
		want                     int
	}{
		{"a.test", "/", "", "", 204},
		{"a.test", "/public/admin/x", "", "", 204},
		{"a.test", "/admin/", "", "", 401},
		{"a.test", "/admin", "", "", 401},
		{"a.test", "/admin/x?y=1", "", "", 401},
		{"a.test", "/%61dmin/x", "", "", 401},
		{"a.test", "/x/../admin/x", "", "", 401},
		{"a.test", "//admin//x", "", "", 401},
		{"a.test", "/./admin/x", "", "", 401},
		{"a.test", "/admin%2fx", "", "", 401},
		{"a.test", "/../admin/x", "", "", 401},
		{"a.test", "/%zz", "", "", 403},
		{"a.test", "/a%00b", "", "", 403},
		{"a.test", "admin/x", "", "", 403},
		{"b.test", "/", "", "", 403},
		{"a.test", "/admin/x", "alice", "wonderland", 204},
		{"a.test", "/admin/x", "alice", "wonderland", 204}, // remembered
		{"a.test", "/admin/x", "alice", "wrong", 401},
		{"a.test", "/admin/x", "bob", "builder", 204},
		{"a.test", "/admin/x", "bob", "builders", 401},
		{"a.test", "/admin/x", "carol", "wonderland", 401},
		{"a.test", "/team.html", "alice", "wonderland", 401},
		{"a.test", "/team.html", "bob", "builder", 204},
		// Whatever nginx would answer with counts: a literal "#" ends the
		// path for nginx, and clean URLs and indexes name the same file.
		{"a.test", "/admin#/../../public", "", "", 401},
		{"a.test", "/admin/x#", "", "", 401},
		{"a.test", "/public#/../admin/x", "", "", 204},
		{"a.test", "/team", "", "", 401},
		{"a.test", "/team/", "", "", 204}, // its index, not team.html
		{"a.test", "/%74eam", "", "", 401},
		{"a.test", "/locked/index.html", "", "", 401},
		{"a.test", "/locked", "", "", 401},
		{"a.test", "/locked/", ":", "", 401},
		{"a.test", "/locked/", "", "x", 401},
		// A user in two lists may use either password.
		{"a.test", "/both", "bob", "wonderland", 204},
		{"a.test", "/both", "bob", "builder", 204},
	} {
		w := ask(c, tc.host, tc.target, tc.user, tc.pass)
		if w.Code != tc.want {
			t.Errorf("%s %s as %q: %d, want %d", tc.host, tc.target, tc.user, w.Code, tc.want)
		}
		if w.Code == 401 && w.Header().Get("WWW-Authenticate") != `Basic realm="a.test", charset="UTF-8"` {
			t.Errorf("%s %s: challenge %q", tc.host, tc.target, w.Header().Get("WWW-Authenticate"))
		}
	}
	for _, bad := range []string{"Basic !!!", "Bearer x", "Basic " + strings.Repeat("A", 2000)} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("H", "a.test")
		r.Header.Set("U", "/admin/x")
		r.Header.Set("Authorization", bad)
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("Authorization %.20q: %d", bad, w.Code)
		}
	}
}

// A wrong password for a user who exists, any password for one who does
// not, and a bundle's clear-password user all cost the same: exactly one
// bcrypt comparison at the site's cost, so timing does not tell users.
func TestEveryCheckCostsOneHash(t *testing.T) {
	c := checker(t)
	var costs []int
	compare := c.compare
	c.compare = func(h, p []byte) error {
		cost, err := bcrypt.Cost(h)
		if err != nil {
			t.Fatalf("compared with %q: %v", h, err)
		}
		costs = append(costs, cost)
		return compare(h, p)
	}
	for _, login := range [][2]string{{"alice", "wrong"}, {"nobody", "wrong"}, {"bob", "wrong"}, {"bob", "builder"}} {
		costs = nil
		ask(c, "a.test", "/admin/x", login[0], login[1])
		if len(costs) != 1 || costs[0] != 8 {
			t.Errorf("check as %s:%s: bcrypt comparisons at costs %v, want one at 8", login[0], login[1], costs)
		}
	}
	costs = nil
	if w := ask(c, "a.test", "/admin/x", "bob", "builder"); w.Code != 204 || len(costs) != 0 {
		t.Errorf("a remembered login: %d after %d comparisons", w.Code, len(costs))
	}
}

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"/a#b": "/a", "/a%23b": "/a#b",
		"/": "/", "/a/b/": "/a/b/", "//a///b": "/a/b", "/a/./b/../c?x=/../": "/a/c", "/%2e%2e/a": "/a", "/a%20b": "/a b",
	} {
		if got, err := NormalizePath(in); err != nil || got != want {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
