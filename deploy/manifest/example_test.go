package manifest_test

import (
	"fmt"
	"strings"

	"github.com/sitefleet/sitefleet/deploy/manifest"
)

func ExampleParseRedirects() {
	rules, err := manifest.ParseRedirects(strings.NewReader(`
# single-page app
/docs/*  /v2/docs/:splat  302!
/*       /index.html      200
`), manifest.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rules {
		fmt.Println(r.Line, r.From.Segments, r.To, r.Status, r.Force)
	}
	_, err = manifest.ParseRedirects(strings.NewReader("/a /b\n/c /d;return"), manifest.Limits{})
	fmt.Println(err)
	// Output:
	// 3 [docs *] /v2/docs/:splat 302 true
	// 4 [*] /index.html 200 false
	// _redirects line 2: TO: character ';' (U+003B) is not allowed
}

func ExampleParseHeaders() {
	rules, err := manifest.ParseHeaders(strings.NewReader(
		"/*\n  Content-Security-Policy: default-src 'self'; img-src *\n"), manifest.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %q\n", rules[0].Path.Raw, rules[0].Headers)
	_, err = manifest.ParseHeaders(strings.NewReader("/*\n  X-A: ${host}\n"), manifest.Limits{})
	fmt.Println(err)
	// Output:
	// /* [{"Content-Security-Policy" "default-src 'self'; img-src *"}]
	// _headers line 2: header X-A value: character '$' (U+0024) is not allowed
}
