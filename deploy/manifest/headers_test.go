package manifest

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHeadersAccepted(t *testing.T) {
	tests := []struct {
		name, in string
		want     []HeaderRule
	}{
		{"empty file", "", nil},
		{"only comments", "# a\n\n  # b\n", nil},
		{"CSP block", "/*\n  Content-Security-Policy: default-src 'self'; img-src *\n  X-Frame-Options: DENY\n", []HeaderRule{
			{Line: 1, Path: pat("/*", []string{"*"}, nil, true), Headers: []Header{
				{"Content-Security-Policy", "default-src 'self'; img-src *"},
				{"X-Frame-Options", "DENY"},
			}},
		}},
		{"several paths", "# headers\n/\n\tX-A: 1\n\n/assets/*\n  Cache-Control: public, max-age=31536000, immutable\n  # comment\n  Link: </a.css>; rel=preload\n  Link: </b.js>; rel=preload\n/:lang/page\n  X-Robots-Tag: noindex", []HeaderRule{
			{Line: 2, Path: lit("/", ""), Headers: []Header{{"X-A", "1"}}},
			{Line: 5, Path: pat("/assets/*", []string{"assets", "*"}, nil, true), Headers: []Header{
				{"Cache-Control", "public, max-age=31536000, immutable"},
				{"Link", "</a.css>; rel=preload"},
				{"Link", "</b.js>; rel=preload"},
			}},
			{Line: 10, Path: pat("/:lang/page", []string{":lang", "page"}, []string{"lang"}, false), Headers: []Header{
				{"X-Robots-Tag", "noindex"},
			}},
		}},
		{"CRLF, trimming, colons in value", "/a \r\n \t X-Time:x\r\n  X-B:   a: b:c  \t\r\n", []HeaderRule{
			{Line: 1, Path: lit("/a", "a"), Headers: []Header{{"X-Time", "x"}, {"X-B", "a: b:c"}}},
		}},
		{"Basic-Auth is a login, never a header", "/team/*\n  Basic-Auth: carol:s3cret dave:p@ss:word\n/x\n  basic-auth: e:f\n  X-A: 1", []HeaderRule{
			{Line: 1, Path: pat("/team/*", []string{"team", "*"}, nil, true), BasicAuth: []Credential{{"carol", "s3cret"}, {"dave", "p@ss:word"}}},
			{Line: 3, Path: lit("/x", "x"), Headers: []Header{{"X-A", "1"}}, BasicAuth: []Credential{{"e", "f"}}},
		}},
		{"same path twice", "/a\n  X-A: 1\n/a\n  X-A: 2", []HeaderRule{
			{Line: 1, Path: lit("/a", "a"), Headers: []Header{{"X-A", "1"}}},
			{Line: 3, Path: lit("/a", "a"), Headers: []Header{{"X-A", "2"}}},
		}},
		{"value punctuation", "/a\n  X-P: !#%&'()*+,-./:;<=>?@[]^_`|~ end", []HeaderRule{
			{Line: 1, Path: lit("/a", "a"), Headers: []Header{{"X-P", "!#%&'()*+,-./:;<=>?@[]^_`|~ end"}}},
		}},
		{"longest name and value", "/a\n  " + strings.Repeat("N", 64) + ": " + strings.Repeat("v", 1024), []HeaderRule{
			{Line: 1, Path: lit("/a", "a"), Headers: []Header{{strings.Repeat("N", 64), strings.Repeat("v", 1024)}}},
		}},
		{"name lookalikes are allowed", "/a\n  Dates: x\n  X-Server: y\n  Proxyish: z", []HeaderRule{
			{Line: 1, Path: lit("/a", "a"), Headers: []Header{{"Dates", "x"}, {"X-Server", "y"}, {"Proxyish", "z"}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeaders(strings.NewReader(tt.in), Limits{})
			if err != nil {
				t.Fatalf("ParseHeaders: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseHeadersRefused(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		want     []string
	}{
		{"indented line first", "  X-A: 1\n/a\n  X-B: 2", 1, []string{"indented line before any path line"}},
		{"indented line after comments", "# c\n\n\tX-A: 1", 3, []string{"indented line before any path line"}},
		{"path without headers at end", "/a\n  X-A: 1\n/b\n", 3, []string{"path /b has no headers"}},
		{"path without headers before another", "/a\n# c\n/b\n  X-A: 1", 1, []string{"path /a has no headers"}},
		{"unindented header", "/a\nX-A: 1", 2, []string{"header lines must be indented"}},
		{"unindented header without space", "/a\nX-A:1", 2, []string{`path must start with "/"`, "header lines must be indented"}},
		{"header without colon", "/a\n  X-A 1", 2, []string{`header line has no ":"`}},
		{"unset syntax", "/a\n  ! X-Powered-By", 2, []string{`unsetting headers ("! Name") is not supported`}},
		{"unset syntax without space", "/a\n  !X-Powered-By", 2, []string{"unsetting headers"}},
		{"empty name", "/a\n  : v", 2, []string{"header name must be 1 to 64"}},
		{"name too long", "/a\n  " + strings.Repeat("N", 65) + ": v", 2, []string{"header name must be 1 to 64"}},
		{"space before colon", "/a\n  X-A : v", 2, []string{"header name", "' '"}},
		{"underscore in name", "/a\n  X_A: v", 2, []string{"header name", "'_'"}},
		{"empty value", "/a\n  X-A:", 2, []string{"header X-A", "1 to 1024"}},
		{"blank value", "/a\n  X-A:   \t", 2, []string{"header X-A", "1 to 1024"}},
		{"value too long", "/a\n  X-A: " + strings.Repeat("v", 1025), 2, []string{"1 to 1024"}},
		{"tab inside value", "/a\n  X-A: a\tb", 2, []string{"header X-A value", `'\t'`}},
		{"path with two fields", "/a /b\n  X-A: 1", 1, []string{"a path line must hold only the path"}},
		{"path with trailing comment", "/a # c\n  X-A: 1", 1, []string{"a path line must hold only the path"}},
		{"domain-level path", "https://example.com/*\n  X-A: 1", 1, []string{"domain-level"}},
		{"bad path character", "/a$b\n  X-A: 1", 1, []string{"path", "'$'"}},
		{"dot-dot path", "/a/../b\n  X-A: 1", 1, []string{`".."`}},
		{"double slash path", "/a//b\n  X-A: 1", 1, []string{`"//"`}},
		{"splat inside path segment", "/img*\n  X-A: 1", 1, []string{"splat"}},
		{"bad percent in path", "/a%2\n  X-A: 1", 1, []string{"bad percent escape"}},
		{"invalid UTF-8 value", "/a\n  X-A: \xff", 2, []string{"invalid UTF-8"}},
		{"Basic-Auth without logins", "/a\n  Basic-Auth:", 2, []string{"Basic-Auth"}},
		{"Basic-Auth without password", "/a\n  Basic-Auth: carol", 2, []string{"user:password"}},
		{"Basic-Auth with an empty password", "/a\n  Basic-Auth: carol:", 2, []string{"user:password"}},
		{"Basic-Auth with a bad user", "/a\n  Basic-Auth: c\"a:x", 2, []string{"user:password"}},
		{"Basic-Auth with too many logins", "/a\n  Basic-Auth:" + strings.Repeat(" u:p", MaxCredentials+1), 2, []string{"more than 50 logins"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeaders(strings.NewReader(tt.in), Limits{})
			if got != nil {
				t.Errorf("got %+v with an error", got)
			}
			wantLineError(t, err, HeadersFile, tt.line, tt.want...)
		})
	}
}

func TestParseHeadersForbiddenNames(t *testing.T) {
	names := []string{
		"Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Upgrade",
		"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "TE", "Trailer",
		"Host", "Date", "Server", "X-Accel-Redirect", "X-Accel-Buffering",
	}
	for _, n := range names {
		for _, name := range []string{n, strings.ToLower(n), strings.ToUpper(n)} {
			_, err := ParseHeaders(strings.NewReader("/a\n  X-Ok: 1\n  "+name+": v"), Limits{})
			wantLineError(t, err, HeadersFile, 3, "header "+name+" is not allowed", "hop-by-hop")
		}
	}
}

func TestParseHeadersForbiddenValueCharacters(t *testing.T) {
	chars := append([]string{"\t"}, forbidden...)
	for _, c := range chars {
		if strings.Contains(";'!@()[]^|<>`", c) {
			continue // fine in a header value
		}
		desc := describeRune([]rune(c)[0])
		_, err := ParseHeaders(strings.NewReader("/a\n  X-A: a"+c+"b"), Limits{})
		wantLineError(t, err, HeadersFile, 2, "header X-A value: character "+desc, "not allowed")
	}
}

// TestParseHeadersEveryASCII tries every ASCII character in a header name
// and value.
func TestParseHeadersEveryASCII(t *testing.T) {
	for c := range byte(0x80) {
		if c == '\n' {
			continue
		}
		_, err := ParseHeaders(strings.NewReader("/a\n  X-A: a"+string(c)+"b"), Limits{})
		if ok := c >= 0x20 && c <= 0x7e && !strings.ContainsRune(`"\${}`, rune(c)); ok != (err == nil) {
			t.Errorf("value with %q: error %v", c, err)
		}
		_, err = ParseHeaders(strings.NewReader("/a\n  X"+string(c)+"A: v"), Limits{})
		name := c == '-' || c == ':' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if name != (err == nil) {
			t.Errorf("name with %q: error %v", c, err)
		}
	}
}
