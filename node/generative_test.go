package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitefleet/sitefleet/deploy/manifest"
	"github.com/sitefleet/sitefleet/model"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
	"github.com/sitefleet/sitefleet/webserver"
)

// What the API and a bundle accept, nginx serves: plans are generated from
// random sites, aliases, options, TLS settings and _redirects/_headers
// texts; whatever state validation and the manifest parser accept goes
// into the plan the way the reconciler builds it, and the real nginx must
// accept the whole rendered config. A refusal would stop every change of
// the node, so it fails the test with the generated input.

// genFixture is what every generated plan shares: an nginx prefix, a
// document root, DH parameters and a certificate nginx can load.
type genFixture struct {
	dir          string
	srv          *webserver.Server
	root, dh     string
	chain, key   string
	placeholder  string
	https, plain string
}

var (
	genOnce sync.Once
	genFix  *genFixture
	genErr  error
)

// generativeFixture builds the shared fixture once per test binary;
// TestMain removes its directory.
func generativeFixture(t testing.TB) *genFixture {
	t.Helper()
	genOnce.Do(func() { genFix, genErr = newGenFixture() })
	if genErr != nil {
		t.Fatalf("generative fixture: %v", genErr)
	}
	return genFix
}

func newGenFixture() (*genFixture, error) {
	dir, err := os.MkdirTemp("", "sitefleet-gen-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	f := &genFixture{dir: dir, root: filepath.Join(dir, "root"), placeholder: filepath.Join(dir, "placeholder"),
		dh: filepath.Join(dir, "dh.pem"), chain: filepath.Join(dir, "c.pem"), key: filepath.Join(dir, "k.pem"),
		plain: "127.0.0.1:1", https: "127.0.0.1:2"}
	for _, d := range []string{f.root, f.placeholder} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	chain, key, err := sftls.SelfSigned([]string{"gen.test"}, time.Hour, time.Now())
	if err != nil {
		return nil, err
	}
	for p, b := range map[string][]byte{f.dh: sftls.FFDHE2048(), f.chain: chain, f.key: key} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
	}
	f.srv, err = webserver.New(webserver.Options{Prefix: filepath.Join(dir, "nginx"), Logger: slog.New(slog.DiscardHandler)})
	return f, err
}

// gen draws random inputs, valid and hostile alike.
type gen struct{ r *rand.Rand }

func (g gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g gen) chars(alphabet string, min, max int) string {
	n := min + g.r.IntN(max-min+1)
	rs := []rune(alphabet)
	var b strings.Builder
	for range n {
		b.WriteRune(rs[g.r.IntN(len(rs))])
	}
	return b.String()
}

func (g gen) label() string {
	switch g.r.IntN(12) {
	case 0:
		return g.pick("default", "include", "hostnames", "volatile", "localhost", "xn--bcher-kva", "bücher", "日本", "ПРИМЕР", "a;b", "a{", "$host", "a b", "_", "-a", "a-", strings.Repeat("a", 63), strings.Repeat("b", 64), "", "*")
	case 1:
		return g.chars("abcdefghijklmnopqrstuvwxyz0123456789-", 1, 70)
	}
	return g.chars("abcdefghijklmnopqrstuvwxyz0123456789", 1, 12)
}

func (g gen) hostname() string {
	labels := make([]string, 1+g.r.IntN(4))
	for i := range labels {
		labels[i] = g.label()
	}
	if g.r.IntN(8) == 0 {
		return strings.Join(labels, ".")
	}
	return strings.Join(labels, ".") + g.pick(".test", ".example", ".com", ".invalid", "")
}

func (g gen) site() state.Site {
	s := state.Site{Domain: g.hostname()}
	for range g.r.IntN(4) {
		s.Aliases = append(s.Aliases, g.hostname())
	}
	s.Options.RedirectAliases = g.r.IntN(2) == 0
	s.Options.RedirectHTML = g.r.IntN(2) == 0
	if g.r.IntN(2) == 0 {
		s.TLS = &state.SiteTLS{Mode: state.TLSMode(g.pick("selfsigned", "acme", "imported", "none", "bogus")), RedirectHTTP: g.r.IntN(2) == 0}
		if s.TLS.Mode == state.TLSImported {
			s.TLS.Certificate = g.pick("my-cert", "x;y", "")
		}
		if g.r.IntN(2) == 0 {
			s.TLS.HSTS = &state.HSTS{MaxAge: g.r.IntN(state.MaxHSTSMaxAge + 10), IncludeSubdomains: g.r.IntN(2) == 0, Preload: g.r.IntN(3) == 0}
		}
	}
	return s
}

// Pieces of path patterns and targets, hostile ones among them.
var (
	goodLiterals = []string{"a", "blog", "x.y", "a-b_c~d", "%41", "%7e", "index.html", "2024", "@", "+", ",", "=", "v1.2", "A_B"}
	badLiterals  = []string{"%2F", "%22", "%7B", "%2e", "%25", "é", ";", "{", "$x", "\\", `"`, "'", "a b", "%0d%0a", ":", "..", "."}
	goodStatuses = []string{"", "301", "302", "303", "307", "308", "200", "404", "200!", "301!", "404!"}
	badStatuses  = []string{"418", "abc", "Country=us", "302 Role=admin", "200!!"}
)

func (g gen) literal() string {
	if g.r.IntN(5) == 0 {
		return g.pick(badLiterals...)
	}
	return g.pick(goodLiterals...)
}

func (g gen) status() string {
	if g.r.IntN(6) == 0 {
		return g.pick(badStatuses...)
	}
	return g.pick(goodStatuses...)
}

func (g gen) placeholder() string {
	return ":" + g.chars("abcdefghijklmnopqrstuvwxyz0123456789_", 1, 40)
}

func (g gen) pattern() (string, []string) {
	var segs, names []string
	for range 1 + g.r.IntN(4) {
		switch g.r.IntN(3) {
		case 0:
			p := g.placeholder()
			names = append(names, p)
			segs = append(segs, p)
		default:
			segs = append(segs, g.literal())
		}
	}
	if g.r.IntN(3) == 0 {
		segs = append(segs, "*")
		names = append(names, ":splat")
	}
	p := "/" + strings.Join(segs, "/")
	if g.r.IntN(5) == 0 {
		p += "/"
	}
	return p, names
}

func (g gen) target(names []string) string {
	var b strings.Builder
	b.WriteString(g.pick("", "", "", "", "", "", "https://example.com", "http://a.test:8080", "//evil.example", "javascript:", "https://ex ample.com"))
	for range 1 + g.r.IntN(3) {
		b.WriteString("/")
		if len(names) > 0 && g.r.IntN(2) == 0 {
			b.WriteString(names[g.r.IntN(len(names))])
		} else {
			b.WriteString(g.literal())
		}
	}
	b.WriteString(g.pick("", "", "?a=1", "?q=:splat", "#top", "?x=\"y\""))
	return b.String()
}

// redirects returns the generated lines the parser accepts, one by one.
func (g gen) redirects() []manifest.Redirect {
	var out []manifest.Redirect
	for range g.r.IntN(10) {
		from, names := g.pattern()
		line := from + g.pick(" ", "  ", "\t") + g.target(names) + " " + g.status()
		rs, err := manifest.ParseRedirects(strings.NewReader(line), manifest.Limits{})
		if err == nil {
			out = append(out, rs...)
		}
	}
	return out
}

// headers returns the generated blocks the parser accepts, one by one.
func (g gen) headers() []manifest.HeaderRule {
	var out []manifest.HeaderRule
	for range g.r.IntN(5) {
		p, _ := g.pattern()
		block := p + "\n"
		for range 1 + g.r.IntN(4) {
			name := g.pick("X-Frame-Options", "Cache-Control", "Content-Security-Policy", "X-A", "Link", "Access-Control-Allow-Origin", "X-Robots-Tag")
			value := g.pick("DENY", "public, max-age=31536000, immutable", "default-src 'self'; img-src *", "*", "</a.css>; rel=preload", "noindex",
				g.chars(" !#%&'()*+,-./0123456789:;<=>?@ABCZ[]^_`abcz|~", 1, 60))
			if g.r.IntN(6) == 0 {
				name = g.pick("Set-Cookie", "Bad Name", "X-Ü", "Connection", "")
				value = g.pick(g.chars(" !#%&'()*+,-./0123456789:;<=>?@ABCZ[]^_`abcz|~\"$\\{}", 1, 60), strings.Repeat("v", 1030), "a\tb")
			}
			block += "  " + name + ": " + value + "\n"
		}
		hs, err := manifest.ParseHeaders(strings.NewReader(block), manifest.Limits{})
		if err == nil {
			out = append(out, hs...)
		}
	}
	return out
}

// plan draws up to n sites and builds the plan the reconciler would: sites
// that do not validate or whose names are taken are left out, as the
// reconciler leaves them out. It returns a description for failures.
func (g gen) plan(f *genFixture, n int, tb testing.TB) (webserver.Plan, string) {
	plan := webserver.Plan{HTTPListen: f.plain, HTTPSListen: f.https, DHParams: f.dh, PlaceholderRoot: f.placeholder, ACMEChallengeUpstream: "127.0.0.1:3",
		AuthUpstream: "127.0.0.1:3", Previews: &webserver.Previews{Domain: "previews.test", Chain: f.chain, Key: f.key}}
	var desc strings.Builder
	taken := map[string]bool{}
	for range n {
		site, err := state.NormalizeSite(g.site())
		if err != nil || anyTaken(site.Names(), taken) {
			continue
		}
		for _, name := range site.Names() {
			taken[name] = true
		}
		ws := webserver.Site{Domain: site.Domain, Aliases: site.Aliases, RedirectAliases: site.Options.RedirectAliases, RedirectHTML: site.Options.RedirectHTML}
		if g.r.IntN(3) > 0 {
			ws.Root = f.root
		}
		if site.ModeOf() != state.TLSNone {
			ws.TLS = &webserver.SiteTLS{RedirectHTTP: site.TLS.RedirectHTTP, Certificates: []webserver.CertFiles{{Names: site.Names(), Chain: f.chain, Key: f.key, Staple: g.r.IntN(4) == 0}}}
			if site.TLS.HSTS != nil {
				ws.TLS.HSTS = site.TLS.HSTS.Header()
			}
		}
		m := manifest.Manifest{Redirects: g.redirects(), Headers: g.headers()}
		if rules := ToRules(m); !rules.Empty() {
			if err := rules.Check(); err != nil {
				tb.Errorf("the manifest parser accepted rules the renderer refuses: %v\n%s", err, describeManifest(m))
				continue
			}
			ws.Rules = rules
		}
		ws.Protected = g.r.IntN(4) == 0
		fmt.Fprintf(&desc, "site %s aliases %v options %+v tls %+v protected %v\n%s", site.Domain, site.Aliases, site.Options, ws.TLS, ws.Protected, describeManifest(m))
		plan.Sites = append(plan.Sites, ws)
		// A preview of it, as the API would name it, with rules of its own.
		host := model.PreviewHost(g.pick("pr-1", "x", "a1b2"), site.Domain, "previews.test")
		if h, err := state.NormalizeHostname(host); g.r.IntN(3) == 0 && err == nil && h == host && !taken[host] {
			taken[host] = true
			p := webserver.Site{Domain: host, Root: f.root, Preview: true, Protected: g.r.IntN(2) == 0}
			if rules := ToRules(manifest.Manifest{Redirects: g.redirects(), Headers: g.headers()}); !rules.Empty() && rules.Check() == nil {
				p.Rules = rules
			}
			fmt.Fprintf(&desc, "preview %s protected %v\n", host, p.Protected)
			plan.Sites = append(plan.Sites, p)
		}
	}
	return plan, desc.String()
}

func anyTaken(names []string, taken map[string]bool) bool {
	for _, n := range names {
		if taken[n] {
			return true
		}
	}
	return false
}

func describeManifest(m manifest.Manifest) string {
	var b strings.Builder
	for _, r := range m.Redirects {
		fmt.Fprintf(&b, "  redirect %s -> %s %d force=%v\n", r.From.Raw, r.To, r.Status, r.Force)
	}
	for _, h := range m.Headers {
		fmt.Fprintf(&b, "  headers %s %q\n", h.Path.Raw, h.Headers)
	}
	return b.String()
}

// checkGenerated renders a plan drawn from seed and has nginx test it.
func checkGenerated(t *testing.T, f *genFixture, seed uint64, sites int) {
	t.Helper()
	g := gen{rand.New(rand.NewPCG(seed, seed^0x5eed))}
	plan, desc := g.plan(f, sites, t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.srv.Test(ctx, plan); err != nil {
		t.Fatalf("seed %d: nginx refused a plan of accepted inputs: %v\n%s", seed, err, desc)
	}
}

func TestGeneratedConfigPassesNginx(t *testing.T) {
	f := generativeFixture(t)
	for seed := range uint64(60) {
		checkGenerated(t, f, seed, 12)
	}
}

func FuzzGeneratedConfigPassesNginx(f *testing.F) {
	for _, seed := range []uint64{0, 1, 42, 1 << 40} {
		f.Add(seed, uint8(8))
	}
	f.Fuzz(func(t *testing.T, seed uint64, sites uint8) {
		checkGenerated(t, generativeFixture(t), seed, int(sites%24))
	})
}
