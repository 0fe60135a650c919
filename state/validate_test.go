package state

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sitefleet/sitefleet/model"
)

func TestNormalizeHostname(t *testing.T) {
	good := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"a-b.example", "a-b.example"},
		{"localhost", "localhost"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"bücher.example", "xn--bcher-kva.example"},
		{strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com"},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeHostname(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeHostname(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	bad := []string{
		"", " ", "exa mple.com", "example.com;", "example.com; root /etc", "a{b}.com", "}", "{",
		"example.com\n", "ex\nample.com", "$host", "ex$ample.com", "a/b.com", "../etc", `"quoted".com`,
		"'q'.com", "a\\b.com", "a#b.com", "*.example.com", "example.com.", ".example.com", "a..b",
		"-a.com", "a-.com", "under_score.com", strings.Repeat("a", 64) + ".com",
		strings.Repeat("abcdefghi.", 26) + "com", "1.2.3.4", "sitefleet-probe.invalid", "invalid",
		"a\x00b.com", "a\tb.com", "a:80.com", "a@b.com", "exa`mple.com",
		"default", "DEFAULT", "include", "Include", "hostnames", "volatile",
	}
	for _, in := range bad {
		t.Run("bad/"+in, func(t *testing.T) {
			got, err := NormalizeHostname(in)
			if err == nil {
				t.Fatalf("NormalizeHostname(%q) = %q, want an error", in, got)
			}
			if ErrorCode(err) != Invalid {
				t.Fatalf("error code = %q, want %q", ErrorCode(err), Invalid)
			}
		})
	}
}

func TestSiteNormalize(t *testing.T) {
	s, err := NormalizeSite(Site{Domain: "Example.com", Aliases: []string{"www.example.com", "B.example.com", "www.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(s.Aliases, ","), "b.example.com,www.example.com"; got != want {
		t.Fatalf("aliases = %q, want %q", got, want)
	}
	if _, err := NormalizeSite(Site{Domain: "a.com", Aliases: []string{"A.com"}}); err == nil {
		t.Fatal("alias equal to domain accepted")
	}
	many := make([]string, MaxAliases+1)
	for i := range many {
		many[i] = strings.Repeat("x", i+1) + ".com"
	}
	if _, err := NormalizeSite(Site{Domain: "a.com", Aliases: many}); err == nil {
		t.Fatal("too many aliases accepted")
	}
}

func TestValidateSitesDuplicates(t *testing.T) {
	_, err := ValidateSites([]Site{{Domain: "a.com", Aliases: []string{"x.com"}}, {Domain: "b.com", Aliases: []string{"X.com"}}})
	if ErrorCode(err) != NameTaken {
		t.Fatalf("err = %v, want NameTaken", err)
	}
	_, err = ValidateSites([]Site{{Domain: "a.com"}, {Domain: "a.com"}})
	if ErrorCode(err) != NameTaken {
		t.Fatalf("err = %v, want NameTaken", err)
	}
}

func TestKeepAssetsValidation(t *testing.T) {
	ok := func(paths ...string) *KeepAssets { return &KeepAssets{Paths: paths, WindowSeconds: 3600} }
	s, err := NormalizeSite(Site{Domain: "a.test", Options: SiteOptions{KeepAssets: ok("/b/*", "/a/*", "/b/*", "/app.js", "/*")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Options.KeepAssets.Paths; !slices.Equal(got, []string{"/*", "/a/*", "/app.js", "/b/*"}) {
		t.Fatalf("paths = %v", got)
	}
	for _, bad := range []*KeepAssets{
		ok(), ok("assets/*"), ok("/a/../b/*"), ok("/a//b"), ok("/a/*/b"), ok("/a b"), ok("/a\n"), ok("/"), ok("/./x"),
		ok("/" + strings.Repeat("a", 300)), {Paths: []string{"/a/*"}, WindowSeconds: 59}, {Paths: []string{"/a/*"}, WindowSeconds: 31 * 24 * 3600},
	} {
		if _, err := NormalizeSite(Site{Domain: "a.test", Options: SiteOptions{KeepAssets: bad}}); ErrorCode(err) != Invalid {
			t.Errorf("keepAssets %+v: %v, want invalid", bad, err)
		}
	}
	k := ok("/assets/*", "/app.js")
	for p, want := range map[string]bool{"assets/x.js": true, "assets/a/b.css": true, "assets": false, "assetsx/y": false, "app.js": true, "app.js.map": false, "index.html": false} {
		if k.Keeps(p) != want {
			t.Errorf("Keeps(%q) = %v", p, !want)
		}
	}
}

// Protection and previews past their limits, or malformed, are refused.
func TestProtectionAndPreviewLimits(t *testing.T) {
	hash := "$2a$10$" + strings.Repeat("a", 53)
	users := func(n int) []BasicUser {
		out := make([]BasicUser, n)
		for i := range out {
			out[i] = BasicUser{Name: fmt.Sprintf("u%d", i), Hash: hash}
		}
		return out
	}
	paths := make([]string, MaxProtectedPaths+1)
	for i := range paths {
		paths[i] = fmt.Sprintf("/p%d/*", i)
	}
	if _, err := NormalizeSite(Site{Domain: "a.test", Options: SiteOptions{Protection: &Protection{Users: users(MaxProtectedUsers), Paths: paths[:MaxProtectedPaths]}}}); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	for name, p := range map[string]*Protection{
		"too many users":      {Users: users(MaxProtectedUsers + 1)},
		"too many paths":      {Users: users(1), Paths: paths},
		"long user name":      {Users: []BasicUser{{Name: strings.Repeat("u", 65), Hash: hash}}},
		"user name with NUL":  {Users: []BasicUser{{Name: "u\x00", Hash: hash}}},
		"hash with a newline": {Users: []BasicUser{{Name: "u", Hash: hash[:58] + "\n"}}},
		"huge hash":           {Users: []BasicUser{{Name: "u", Hash: hash + strings.Repeat("a", 1<<16)}}},
		"cost 13":             {Users: []BasicUser{{Name: "u", Hash: "$2a$13$" + strings.Repeat("a", 53)}}},
	} {
		if _, err := NormalizeSite(Site{Domain: "a.test", Options: SiteOptions{Protection: p}}); ErrorCode(err) != Invalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	previews := make([]Preview, model.MaxPreviews+1)
	for i := range previews {
		name := fmt.Sprintf("p%d", 100+i)
		previews[i] = Preview{Name: name, Host: model.PreviewHost(name, "a.test", "p.test"), Deployment: Deployment{App: "web", Version: "1", SHA256: strings.Repeat("a", 64)}}
	}
	if _, err := NormalizeSite(Site{Domain: "a.test", Previews: previews[:model.MaxPreviews]}); err != nil {
		t.Fatalf("%d previews: %v", model.MaxPreviews, err)
	}
	if _, err := NormalizeSite(Site{Domain: "a.test", Previews: previews}); ErrorCode(err) != Invalid {
		t.Errorf("%d previews: %v, want invalid", len(previews), err)
	}
	long := Preview{Name: strings.Repeat("p", model.MaxPreviewName), Host: model.PreviewHost(strings.Repeat("p", model.MaxPreviewName), strings.Repeat("d", 40)+".test", "p.test")}
	if _, err := NormalizeSite(Site{Domain: strings.Repeat("d", 40) + ".test", Previews: []Preview{long}}); ErrorCode(err) != Invalid {
		t.Errorf("a preview host label over 63 characters: %v, want invalid", err)
	}
}
