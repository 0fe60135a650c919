package manifest

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRedirectsAccepted(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Redirect
	}{
		{"empty file", "", nil},
		{"only comments and blank lines", "# x\n\n   # y\n\t\n", nil},
		{"SPA fallback", "/* /index.html 200", []Redirect{
			{Line: 1, From: pat("/*", []string{"*"}, nil, true), To: "/index.html", Status: 200},
		}},
		{"default status", "/old /new", []Redirect{
			{Line: 1, From: lit("/old", "old"), To: "/new", Status: 301},
		}},
		{"placeholders", "/blog/:year/:slug /posts/:year/:slug 301", []Redirect{
			{Line: 1, From: pat("/blog/:year/:slug", []string{"blog", ":year", ":slug"}, []string{"year", "slug"}, false),
				To: "/posts/:year/:slug", Status: 301},
		}},
		{"splat forced", "/docs/* /v2/docs/:splat 302!", []Redirect{
			{Line: 1, From: pat("/docs/*", []string{"docs", "*"}, nil, true), To: "/v2/docs/:splat", Status: 302, Force: true},
		}},
		{"absolute URL", "/x https://example.com/y?a=1#f 308", []Redirect{
			{Line: 1, From: lit("/x", "x"), To: "https://example.com/y?a=1#f", Status: 308},
		}},
		{"404 page", "/404-page /404.html 404", []Redirect{
			{Line: 1, From: lit("/404-page", "404-page"), To: "/404.html", Status: 404},
		}},
		{"303 and 307", "/a /b 303\n/c /d 307", []Redirect{
			{Line: 1, From: lit("/a", "a"), To: "/b", Status: 303},
			{Line: 2, From: lit("/c", "c"), To: "/d", Status: 307},
		}},
		{"forced 200 and 404", "/a /b 200!\n/c /d 404!", []Redirect{
			{Line: 1, From: lit("/a", "a"), To: "/b", Status: 200, Force: true},
			{Line: 2, From: lit("/c", "c"), To: "/d", Status: 404, Force: true},
		}},
		{"root and trailing slash", "/ /home/\n/a/ /b", []Redirect{
			{Line: 1, From: lit("/", ""), To: "/home/", Status: 301},
			{Line: 2, From: lit("/a/", "a", ""), To: "/b", Status: 301},
		}},
		{"tabs, CRLF, comments and blank lines", "# rules\r\n\r\n\t/a\t\t/b  302 \r\n  # indented comment\r\n/c /d\r\n", []Redirect{
			{Line: 3, From: lit("/a", "a"), To: "/b", Status: 302},
			{Line: 5, From: lit("/c", "c"), To: "/d", Status: 301},
		}},
		{"allowed path characters", "/A-z_0.9~%7E%3a/x /B-z_0.9~%2f?q=a-b.c_d~e%20f&g+h,i#j=k&l 302", []Redirect{
			{Line: 1, From: lit("/A-z_0.9~%7E%3a/x", "A-z_0.9~%7E%3a", "x"), To: "/B-z_0.9~%2f?q=a-b.c_d~e%20f&g+h,i#j=k&l", Status: 302},
		}},
		{"placeholder inside a TO segment", "/p/:id /items/:id.html", []Redirect{
			{Line: 1, From: pat("/p/:id", []string{"p", ":id"}, []string{"id"}, false), To: "/items/:id.html", Status: 301},
		}},
		{"placeholders and splat to a URL", "/:lang/* http://docs.example.org:8080/:lang/:splat 302", []Redirect{
			{Line: 1, From: pat("/:lang/*", []string{":lang", "*"}, []string{"lang"}, true),
				To: "http://docs.example.org:8080/:lang/:splat", Status: 302},
		}},
		{"URL without path", "/a https://example.com\n/b https://example.com?x=1\n/c https://example.com#top", []Redirect{
			{Line: 1, From: lit("/a", "a"), To: "https://example.com", Status: 301},
			{Line: 2, From: lit("/b", "b"), To: "https://example.com?x=1", Status: 301},
			{Line: 3, From: lit("/c", "c"), To: "https://example.com#top", Status: 301},
		}},
		{"longest placeholder name", "/:" + strings.Repeat("a", 32) + " /x", []Redirect{
			{Line: 1, From: pat("/:"+strings.Repeat("a", 32), []string{":" + strings.Repeat("a", 32)}, []string{strings.Repeat("a", 32)}, false),
				To: "/x", Status: 301},
		}},
		{"dots inside segments", "/a.b/...c /d..e/.f", []Redirect{
			{Line: 1, From: lit("/a.b/...c", "a.b", "...c"), To: "/d..e/.f", Status: 301},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRedirects(strings.NewReader(tt.in), Limits{})
			if err != nil {
				t.Fatalf("ParseRedirects: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRedirectsRefused(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		want     []string
	}{
		{"one field", "/a", 1, []string{"FROM TO"}},
		{"error on a later line", "# c\n/a /b\n\n/c", 4, []string{"FROM TO"}},
		{"trailing comment", "/a /b 301 # moved", 1, []string{"trailing comments"}},
		{"trailing comment without status", "/a /b # moved", 1, []string{"trailing comments"}},
		{"too many fields", "/a /b 301 extra", 1, []string{"too many fields", "FROM TO [STATUS[!]]"}},
		{"query-parameter matching", "/store id=:id /blog/:id 301", 1, []string{"query-parameter matching"}},
		{"query-parameter matching after TO", "/a /b page=2", 1, []string{"query-parameter matching"}},
		{"country condition", "/ /uk 302 Country=gb", 1, []string{"Country= conditions are not supported"}},
		{"language condition", "/ /fr 302 Language=fr", 1, []string{"Language= conditions are not supported"}},
		{"role condition", "/admin/* /admin/:splat 200! Role=admin", 1, []string{"Role= conditions are not supported"}},
		{"lower-case condition", "/ /uk 302 country=gb", 1, []string{"Country= conditions"}},
		{"domain-level FROM", "https://example.com/* https://www.example.com/:splat 301!", 1, []string{"domain-level"}},
		{"FROM not a path", "old /new", 1, []string{`FROM must start with "/"`}},
		{"TO not a path", "/old new", 1, []string{`TO must be a path starting with "/"`}},
		{"TO other scheme", "/old ftp://example.com/", 1, []string{"TO must be a path"}},
		{"TO javascript", "/old javascript:alert(1)", 1, []string{"TO must be a path"}},
		{"TO upper-case scheme", "/old HTTPS://example.com/", 1, []string{"lower-case"}},
		{"TO upper-case host", "/old https://Example.com/", 1, []string{"host must be lower-case"}},
		{"TO no host", "/old https:///x", 1, []string{"no host"}},
		{"TO userinfo", "/old https://user@example.com/", 1, []string{"TO host", "'@'"}},
		{"TO IPv6 host", "/old https://[::1]/", 1, []string{"TO host", "'['"}},
		{"TO empty label", "/old https://example..com/", 1, []string{"empty label"}},
		{"TO label with leading dash", "/old https://-example.com/", 1, []string{`"-"`}},
		{"TO bad port", "/old https://example.com:http/", 1, []string{"port"}},
		{"TO port zero", "/old https://example.com:0/", 1, []string{"port"}},
		{"TO port too big", "/old https://example.com:65536/", 1, []string{"port"}},
		{"TO empty port", "/old https://example.com:/", 1, []string{"port"}},
		{"TO URL path not under a slash", "/old https://example.com:80x/", 1, []string{"port"}},
		{"status 410", "/a /b 410", 1, []string{`status "410" is not supported`, "301"}},
		{"status 500", "/a /b 500", 1, []string{`status "500"`}},
		{"status not a number", "/a /b permanent", 1, []string{`status "permanent"`}},
		{"status double bang", "/a /b 301!!", 1, []string{`status "301!!"`}},
		{"status only bang", "/a /b !", 1, []string{`status "!"`}},
		{"status with sign", "/a /b +301", 1, []string{`status "+301"`}},
		{"rewrite to URL", "/api/* https://api.example.com/:splat 200", 1, []string{"status 200 needs a path", "proxying"}},
		{"404 to URL", "/a https://example.com/404 404", 1, []string{"status 404 needs a path"}},
		{"undefined placeholder", "/blog/:year /posts/:slug", 1, []string{"placeholder :slug", "FROM does not define"}},
		{"splat without star", "/docs/:page /v2/:splat", 1, []string{":splat", `FROM does not end in "*"`}},
		{"splat placeholder in URL", "/a https://example.com/:splat", 1, []string{":splat"}},
		{"colon not a placeholder in TO", "/a /b:1", 1, []string{`":" must start a placeholder`}},
		{"bare colon in TO", "/a /b/:", 1, []string{`":" must start a placeholder`}},
		{"star in TO", "/a/* /b/*", 1, []string{`TO: "*" is not allowed`, ":splat"}},
		{"splat inside segment", "/img* /images", 1, []string{`"*" (splat) must be the whole last segment`}},
		{"splat not last", "/*/a /b", 1, []string{"splat"}},
		{"splat then slash", "/a/*/ /b", 1, []string{"splat"}},
		{"two splats", "/*/* /b", 1, []string{"splat"}},
		{"colon inside FROM segment", "/a:b /c", 1, []string{`":" is only allowed at the start`}},
		{"two colons in a FROM segment", "/:a:b /c", 1, []string{`":" is only allowed at the start`}},
		{"empty placeholder name", "/: /c", 1, []string{"invalid placeholder name"}},
		{"upper-case placeholder", "/:Year /c", 1, []string{`invalid placeholder name "Year"`}},
		{"placeholder starting with digit", "/:1a /c", 1, []string{"invalid placeholder name"}},
		{"placeholder with dash", "/:a-b /c", 1, []string{"invalid placeholder name"}},
		{"placeholder too long", "/:" + strings.Repeat("a", 33) + " /c", 1, []string{"invalid placeholder name", "32"}},
		{"reserved splat name", "/:splat /c/:splat", 1, []string{`"splat" is reserved`}},
		{"duplicate placeholder", "/:a/:a /c/:a", 1, []string{"placeholder :a appears twice"}},
		{"dot-dot in FROM", "/a/../b /c", 1, []string{`".."`}},
		{"dot-dot in TO", "/a /b/../../etc/passwd", 1, []string{`".."`}},
		{"trailing dot-dot in TO", "/a /b/..", 1, []string{`".."`}},
		{"dot segment in FROM", "/./a /c", 1, []string{`"."`}},
		{"encoded dot-dot in FROM", "/a/%2e%2E/b /c", 1, []string{`".."`, "percent-encoded"}},
		{"encoded dot-dot in TO", "/a /b/.%2e/c", 1, []string{`".."`}},
		{"dot-dot in URL path", "/a https://example.com/../x", 1, []string{`".."`}},
		{"double slash in FROM", "/a//b /c", 1, []string{`"//"`}},
		{"double slash in TO", "/a /b//c", 1, []string{`"//"`}},
		{"protocol-relative TO", "/a //evil.example/x", 1, []string{`"//"`}},
		{"FROM is //", "// /c", 1, []string{`"//"`}},
		{"double slash in URL path", "/a https://example.com//x", 1, []string{`"//"`}},
		{"bad percent in FROM", "/a%zz /b", 1, []string{"bad percent escape"}},
		{"encoded slash in FROM", "/a%2Fb /b", 1, []string{`"%2F" encodes "/"`}},
		{"encoded quote in FROM", "/a%22 /b", 1, []string{`"%22" encodes`}},
		{"encoded CR in FROM", "/a%0d /b", 1, []string{`"%0d" encodes`}},
		{"encoded percent in FROM", "/a%25 /b", 1, []string{`"%25" encodes "%"`}},
		{"truncated percent in FROM", "/a% /b", 1, []string{"bad percent escape"}},
		{"one hex digit in TO", "/a /b%2", 1, []string{"bad percent escape"}},
		{"bad percent in query", "/a /b?x=%g1", 1, []string{"TO query string", "bad percent escape"}},
		{"bad percent in fragment", "/a /b#%", 1, []string{"TO fragment", "bad percent escape"}},
		{"empty query", "/a /b?", 1, []string{"empty query string"}},
		{"empty fragment", "/a /b#", 1, []string{"empty fragment"}},
		{"second question mark", "/a /b?x=1?y=2", 1, []string{"TO query string", "'?'"}},
		{"colon in query", "/a/:id /b?id=:id", 1, []string{"TO query string", "':'"}},
		{"slash in fragment", "/a /b#c/d", 1, []string{"TO fragment", "'/'"}},
		{"question mark in FROM", "/a?x=1 /b", 1, []string{"FROM", "'?'"}},
		{"invalid UTF-8", "/a /b\n/c\xff /d", 2, []string{"invalid UTF-8"}},
		{"invalid UTF-8 in a comment", "# \xc3\x28\n/a /b", 1, []string{"invalid UTF-8"}},
		{"carriage return inside a line", "/a /b\r\r\n", 1, []string{"TO", `'\r'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRedirects(strings.NewReader(tt.in), Limits{})
			if got != nil {
				t.Errorf("got %+v with an error", got)
			}
			wantLineError(t, err, RedirectsFile, tt.line, tt.want...)
		})
	}
}

// forbidden are characters the brief names explicitly, with non-ASCII and
// control characters.
var forbidden = []string{
	`"`, "'", "$", "{", "}", ";", `\`, "`", "<", ">", "^", "|",
	"é", "\u2028", "\ufeff", "\x00", "\x07", "\x1b", "\x7f", "\r", "\v", "\f",
	"!", "@", "(", ")", "[", "]", "\u00a0",
}

func TestParseRedirectsForbiddenCharacters(t *testing.T) {
	for _, c := range forbidden {
		r := []rune(c)[0]
		desc := describeRune(r)
		t.Run(desc, func(t *testing.T) {
			for _, in := range []string{
				"/a" + c + "b /x",
				"/x /a" + c + "b",
				"/x /a?k=" + c + "v",
				"/x /a#" + c + "v",
				"/x https://example.com/a" + c + "b 302",
			} {
				_, err := ParseRedirects(strings.NewReader("# first\n"+in), Limits{})
				wantLineError(t, err, RedirectsFile, 2, "character "+desc, "not allowed")
			}
		})
	}
}

// TestParseRedirectsEveryASCII tries every ASCII character in FROM and in
// each part of TO, and checks it is refused exactly when it is not in the
// part's allowlist.
func TestParseRedirectsEveryASCII(t *testing.T) {
	const unreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
	parts := []struct {
		name, prefix, suffix, allowed string
	}{
		{"FROM", "/a", "b /x", unreserved + "/"},
		{"TO path", "/x /a", "b", unreserved + "/?#"},
		{"TO query", "/x /a?k=", "v", unreserved + "=&+,#"},
		{"TO fragment", "/x /a#k", "v", unreserved + "=&+,"},
	}
	for _, p := range parts {
		for c := range byte(0x80) {
			if c == ' ' || c == '\t' || c == '\n' || strings.IndexByte("%:*", c) >= 0 {
				continue // separators; "%", ":" and "*" have rules of their own
			}
			in := p.prefix + string(c) + p.suffix
			_, err := ParseRedirects(strings.NewReader(in), Limits{})
			ok := strings.IndexByte(p.allowed, c) >= 0
			if ok && err != nil {
				t.Errorf("%s %q: %v", p.name, in, err)
			}
			if !ok {
				wantLineError(t, err, RedirectsFile, 1, "character "+describeRune(rune(c)))
			}
		}
	}
}
