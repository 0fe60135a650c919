package manifest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// The predicates below re-check, independently of the parser's code, that
// every returned value is made only of allowlisted characters: the
// injection guarantee.

const (
	alnum        = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	patternBytes = alnum + "-._~/%:*"
	targetBytes  = alnum + "-._~/%:=&+,?#"
	// nginxSpecial may never appear in a returned value.
	nginxSpecial = " \t\r\n\"'$;{}\\`"
)

// onlyBytes reports whether every byte of s is in set.
func onlyBytes(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.Contains(set, s[i:i+1]) {
			return false
		}
	}
	return true
}

// pathIsClean reports whether a "/"-rooted path has no "//" and no dot
// segment, also percent-encoded.
func pathIsClean(p string) bool {
	if strings.Contains(p, "//") {
		return false
	}
	for _, seg := range strings.Split(strings.ToLower(p), "/") {
		seg = strings.ReplaceAll(seg, "%2e", ".")
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// checkPattern fails t unless p is a safe, self-consistent pattern.
func checkPattern(t *testing.T, p Pattern) {
	t.Helper()
	raw := p.Raw
	if !strings.HasPrefix(raw, "/") || !onlyBytes(raw, patternBytes) || strings.ContainsAny(raw, nginxSpecial) || !pathIsClean(raw) {
		t.Fatalf("unsafe pattern %q", raw)
	}
	if "/"+strings.Join(p.Segments, "/") != raw {
		t.Fatalf("segments %q do not make up %q", p.Segments, raw)
	}
	if star := strings.Index(raw, "*"); star >= 0 && (!strings.HasSuffix(raw, "/*") || star != len(raw)-1 || !p.Splat) {
		t.Fatalf("misplaced splat in %q (Splat %v)", raw, p.Splat)
	}
	if strings.Count(raw, ":") != len(p.Placeholders) {
		t.Fatalf("placeholders %q of %q", p.Placeholders, raw)
	}
}

// checkTargetValue fails t unless to is a safe redirect target for status.
func checkTargetValue(t *testing.T, to string, status int) {
	t.Helper()
	rest, url := strings.CutPrefix(to, "https://")
	if !url {
		rest, url = strings.CutPrefix(to, "http://")
	}
	if !url && !strings.HasPrefix(to, "/") || url && (status == 200 || status == 404) {
		t.Fatalf("target %q with status %d", to, status)
	}
	if !onlyBytes(rest, targetBytes) || strings.ContainsAny(to, nginxSpecial) || strings.Contains(to, "*") {
		t.Fatalf("unsafe target %q", to)
	}
	if strings.Count(rest, "?") > 1 || strings.Count(rest, "#") > 1 {
		t.Fatalf("target %q has more than one query or fragment", to)
	}
	path, _, _ := strings.Cut(rest, "?")
	path, _, _ = strings.Cut(path, "#")
	if url {
		host, p, _ := strings.Cut(path, "/")
		if host == "" || !onlyBytes(host, "abcdefghijklmnopqrstuvwxyz0123456789.-:") {
			t.Fatalf("unsafe host in %q", to)
		}
		path = "/" + p
	}
	if !pathIsClean(path) {
		t.Fatalf("unclean path in target %q", to)
	}
}

// checkHeader fails t unless h is a safe header.
func checkHeader(t *testing.T, h Header) {
	t.Helper()
	if h.Name == "" || len(h.Name) > 64 || !onlyBytes(h.Name, alnum+"-") {
		t.Fatalf("unsafe header name %q", h.Name)
	}
	lower := strings.ToLower(h.Name)
	for _, bad := range []string{"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer", "host", "date", "server"} {
		if lower == bad {
			t.Fatalf("forbidden header %q", h.Name)
		}
	}
	if strings.HasPrefix(lower, "proxy-") {
		t.Fatalf("forbidden header %q", h.Name)
	}
	v := h.Value
	if v == "" || len(v) > 1024 || v[0] == ' ' || v[len(v)-1] == ' ' {
		t.Fatalf("bad header value %q", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e || strings.IndexByte(`"\${}`, v[i]) >= 0 {
			t.Fatalf("unsafe header value %q", v)
		}
	}
}

// checkFuzzError fails t unless a refusal is a *LineError with no result.
func checkFuzzError(t *testing.T, err error, nonNil bool) {
	t.Helper()
	if _, ok := errors.AsType[*LineError](err); !ok {
		t.Fatalf("error %v (%T) is not a *LineError", err, err)
	}
	if nonNil {
		t.Fatal("result with an error")
	}
}

// redirectSeeds are valid and invalid _redirects files.
var redirectSeeds = []string{
	"/* /index.html 200",
	"/old /new",
	"/blog/:year/:slug /posts/:year/:slug 301",
	"/docs/* /v2/docs/:splat 302!",
	"/x https://example.com/y?a=1#f 308",
	"/404-page /404.html 404",
	"# c\r\n\r\n/a /b 307\r\n/:lang/* http://a.b:8080/:lang/:splat.html",
	"/a /b$c", "/a\"b /c", "/a /b;c", "/a /b{c}", "/a /b\\c", "/a /b'c", "/a /b`c",
	"/a/../b /c", "/a //evil.com", "/a /b%zz", "/a /b 410", "/a /b 301 Country=us",
	"/store id=:id /blog/:id", "https://a.com/* /b", "/a https://a.com 200",
	"/:a /:b", "/:a /:splat", "/img* /i", "/a /b # c", "/a /b\x00", "/a /é",
	"/a /b?x=1#y=2", "/a /b?", "/a HTTPS://A.COM", "/a https://a..b", "/a https://a.b:99999",
	"/a /%2e%2e/x", "/a /b:", "/:splat /x", "/" + strings.Repeat("a", 3000) + " /b",
}

// headerSeeds are valid and invalid _headers files.
var headerSeeds = []string{
	"/*\n  Content-Security-Policy: default-src 'self'; img-src *\n",
	"/\n\tX-A: 1\n/assets/*\n  Cache-Control: public, max-age=60\n  Link: </a>; rel=preload",
	"# c\r\n/:lang/x\r\n  X-B:  v  \r\n",
	"  X-A: 1", "/a", "/a\nX-A: 1", "/a\n  X-A 1", "/a\n  ! X-A", "/a\n  Connection: close",
	"/a\n  X-A: ${x}", "/a\n  X-A: \"q\"", "/a\n  X-A: a\\b", "/a\n  X-A: {}", "/a\n  X-A:",
	"/a\n  X-A: \x7f", "/a\n  X-A: é", "/a\n  X_A: 1", "/a b\n  X: 1", "https://a.com/*\n  X: 1",
	"/a/../b\n  X: 1", "/a\n  Proxy-Foo: 1", "/a\n  X-A: \xff",
}

func FuzzParseRedirects(f *testing.F) {
	for _, s := range redirectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rds, err := ParseRedirects(bytes.NewReader(data), Limits{})
		if err != nil {
			checkFuzzError(t, err, rds != nil)
			return
		}
		for i, rd := range rds {
			if rd.Line < 1 || i > 0 && rd.Line <= rds[i-1].Line {
				t.Fatalf("line numbers %d", rd.Line)
			}
			checkPattern(t, rd.From)
			checkTargetValue(t, rd.To, rd.Status)
			switch rd.Status {
			case 200, 301, 302, 303, 307, 308, 404:
			default:
				t.Fatalf("status %d", rd.Status)
			}
		}
	})
}

func FuzzParseHeaders(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseHeaders(bytes.NewReader(data), Limits{})
		if err != nil {
			checkFuzzError(t, err, rules != nil)
			return
		}
		for _, r := range rules {
			checkPattern(t, r.Path)
			if len(r.Headers) == 0 || len(r.Headers) > 50 {
				t.Fatalf("rule with %d headers", len(r.Headers))
			}
			for _, h := range r.Headers {
				checkHeader(t, h)
			}
		}
	})
}
