package webserver

import (
	"strconv"
	"strings"
	"testing"
)

func seg(s ...string) Pattern { return Pattern{Segments: s} }

func TestRulesCheckRefusesUnsafeValues(t *testing.T) {
	cases := map[string]Rules{
		"quote in literal":        {Redirects: []Redirect{{From: seg(`a"b`), To: "/x", Status: 301}}},
		"brace in target":         {Redirects: []Redirect{{From: seg("a"), To: "/x{", Status: 301}}},
		"dollar in target":        {Redirects: []Redirect{{From: seg("a"), To: "/$host", Status: 301}}},
		"semicolon in target":     {Redirects: []Redirect{{From: seg("a"), To: "/x;root", Status: 301}}},
		"encoded quote":           {Redirects: []Redirect{{From: seg("a%22b"), To: "/x", Status: 301}}},
		"encoded slash":           {Redirects: []Redirect{{From: seg("a%2Fb"), To: "/x", Status: 301}}},
		"undefined placeholder":   {Redirects: []Redirect{{From: seg("a"), To: "/:nope", Status: 301}}},
		"splat without star":      {Redirects: []Redirect{{From: seg("a"), To: "/:splat", Status: 301}}},
		"bad placeholder":         {Redirects: []Redirect{{From: seg(":A"), To: "/x", Status: 301}}},
		"repeated placeholder":    {Redirects: []Redirect{{From: seg(":a", ":a"), To: "/:a", Status: 301}}},
		"header path repeats :a":  {Headers: []HeaderRule{{Path: seg(":a", "b", ":a"), Headers: []Header{{"X-A", "b"}}}}},
		"unsupported status":      {Redirects: []Redirect{{From: seg("a"), To: "/x", Status: 418}}},
		"rewrite to a URL":        {Redirects: []Redirect{{From: seg("a"), To: "https://e.com/", Status: 200}}},
		"header value quote":      {Headers: []HeaderRule{{Path: seg("*"), Headers: []Header{{"X-A", `a"b`}}}}},
		"header value dollar":     {Headers: []HeaderRule{{Path: seg("*"), Headers: []Header{{"X-A", "$x"}}}}},
		"header value newline":    {Headers: []HeaderRule{{Path: seg("*"), Headers: []Header{{"X-A", "a\nb"}}}}},
		"header name with space":  {Headers: []HeaderRule{{Path: seg("*"), Headers: []Header{{"X A", "b"}}}}},
		"header name with colon":  {Headers: []HeaderRule{{Path: seg("*"), Headers: []Header{{"X:A", "b"}}}}},
		"header path with brace":  {Headers: []HeaderRule{{Path: seg("a}"), Headers: []Header{{"X-A", "b"}}}}},
		"header value over limit": {Headers: []HeaderRule{{Path: seg("*"), Headers: []Header{{"X-A", strings.Repeat("a", 1025)}}}}},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			if err := r.Check(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	var huge Rules
	for i := range 200 {
		rule := HeaderRule{Path: seg("p" + strings.Repeat("x", 40) + strconv.Itoa(i))}
		for j := range 50 {
			rule.Headers = append(rule.Headers, Header{"X-H" + strconv.Itoa(j), strings.Repeat("v", 1000)})
		}
		huge.Headers = append(huge.Headers, rule)
	}
	if err := huge.Check(); err == nil || !strings.Contains(err.Error(), "bytes of nginx config") {
		t.Errorf("rules generating ~10 MB of config: got %v, want the size cap", err)
	}
	ok := Rules{
		Redirects: []Redirect{{From: seg("blog", ":year", "*"), To: "/p/:year/:splat?x=1#f", Status: 302, Force: true}},
		Headers:   []HeaderRule{{Path: seg("*"), Headers: []Header{{"Content-Security-Policy", "default-src 'self'; img-src *"}}}},
	}
	if err := ok.Check(); err != nil {
		t.Fatalf("valid rules refused: %v", err)
	}
}

func TestPatternRegex(t *testing.T) {
	all := func(string) bool { return true }
	long := strings.Repeat("a", 32)
	for _, tc := range []struct {
		p       Pattern
		capture func(string) bool
		want    string
	}{
		{seg(""), all, "^/$"},
		{seg("*"), all, "^(?:/(?<sf_splat>" + captureClass + splatClass + "*)?)?$"},
		{seg("*"), noCaptures, "^(?:/.*)?$"},
		{seg("a.b", ""), all, `^/a\.b/?$`},
		{seg("blog", ":year", ":slug"), all, "^/blog/(?<sf_p0>" + captureClass + "+)/(?<sf_p1>" + captureClass + "+)/?$"},
		{seg("blog", ":year", ":slug"), func(n string) bool { return n == "slug" }, "^/blog/[^/]+/(?<sf_p1>" + captureClass + "+)/?$"},
		{seg(":" + long), all, "^/(?<sf_p0>" + captureClass + "+)/?$"},
		{seg("caf%C3%A9"), all, ""},
		{seg("a%7Eb"), all, "^/a~b/?$"},
		{seg(":a", ":a"), all, ""},
	} {
		got, _, err := tc.p.regex(tc.capture)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%v: accepted as %q", tc.p.Segments, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v = %q, %v; want %q", tc.p.Segments, got, err, tc.want)
		}
	}
}
