package webserver

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testPlan() Plan {
	return Plan{
		HTTPListen:      "127.0.0.1:8080",
		PlaceholderRoot: "/srv/placeholder",
		Sites: []Site{
			{Domain: "b.test", Aliases: []string{"www.b.test", "old.b.test"}, RedirectAliases: true, Root: "/srv/b"},
			{Domain: "a.test", Aliases: []string{"www.a.test"}, Root: "/srv/a"},
			{Domain: "c.test"},
		},
	}
}

func testOptions() Options {
	return Options{Prefix: "/var/lib/sitefleet/nginx", Manage: true}
}

func TestRenderDeterministic(t *testing.T) {
	want, err := Render(testPlan(), testOptions())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	shuffled := testPlan()
	shuffled.Sites[0], shuffled.Sites[2] = shuffled.Sites[2], shuffled.Sites[0]
	shuffled.Sites[2].Aliases = []string{"old.b.test", "www.b.test"}
	for i := range 3 {
		got, err := Render(shuffled, testOptions())
		if err != nil {
			t.Fatalf("Render #%d: %v", i, err)
		}
		if !maps.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("Render #%d of the same plan in another order differs:\ngot  %s\nwant %s", i, got[sitesFile], want[sitesFile])
		}
	}
}

func TestRenderContents(t *testing.T) {
	files, err := Render(testPlan(), testOptions())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	for _, name := range []string{mainFile, mimeFile, sitesFile, probeFile} {
		if len(files[name]) == 0 {
			t.Errorf("file %s: got empty, want contents", name)
		}
	}
	wantIn := map[string][]string{
		sitesFile: {
			"map $host $sf_redirect {\n    hostnames;\n    default \"\";\n" +
				"    \"old.b.test\" \"b.test\";\n    \"www.b.test\" \"b.test\";\n}",
		},
		mainFile: {
			"pid /var/lib/sitefleet/nginx/run/nginx.pid;",
			"error_log stderr warn;\ndaemon off;",
			"worker_processes auto;",
			"worker_connections 4096;",
			"include mime.types;", "include sites.conf;", "include probe.conf;",
			"default_type application/octet-stream;",
			"server_tokens off;", "sendfile on;", "access_log off;",
			"client_body_temp_path /var/lib/sitefleet/nginx/tmp/client_body;",
			"uwsgi_temp_path /var/lib/sitefleet/nginx/tmp/uwsgi;",
			"listen 127.0.0.1:8080 default_server;",
			"return 301 $scheme://$sf_redirect$sf_port$request_uri;",
			`return 404 "sitefleet: no site is configured for this host\n";`,
			"root /var/lib/sitefleet/nginx/hosts/$host;",
			"try_files $uri.html $uri/ @sf_missing;",
			"error_page 404 = @sf_clean;",
			"server_name\n            old.b.test\n            www.b.test;",
		},
		probeFile: {"listen 127.0.0.1:8080;", "server_name sitefleet-probe.invalid;", "location = /generation"},
		mimeFile:  {`"text/css; charset=utf-8" css;`, `"text/html; charset=utf-8" html htm shtml;`, `"image/svg+xml; charset=utf-8" svg svgz;`, "image/png png;"},
	}
	for name, snippets := range wantIn {
		for _, want := range snippets {
			if !strings.Contains(string(files[name]), want) {
				t.Errorf("%s: missing %q; got:\n%s", name, want, files[name])
			}
		}
	}
	for _, root := range []string{"/srv/a", "/srv/b", "/srv/placeholder"} {
		if strings.Contains(string(files[sitesFile])+string(files[mainFile]), root) {
			t.Errorf("the config names document root %s: roots are links, not config", root)
		}
	}
	if strings.Contains(string(files[mainFile]), "/etc/nginx") {
		t.Errorf("nginx.conf refers to /etc/nginx:\n%s", files[mainFile])
	}
}

func TestRenderUnknownHostBodyMatchesConstant(t *testing.T) {
	files, err := Render(testPlan(), testOptions())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	want := fmt.Sprintf("return 404 %q;", UnknownHostBody) // nginx knows \n in quoted strings
	if !strings.Contains(string(files[mainFile]), want) {
		t.Errorf("nginx.conf: missing %s", want)
	}
}

func TestRenderOptionsVariants(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		want     []string
		wantNone []string
	}{
		{"unmanaged", Options{Prefix: "/p"}, []string{"error_log /p/logs/error.log warn;"}, []string{"daemon off;", "error_log stderr"}},
		{"access log", Options{Prefix: "/p", AccessLog: "/var/log/sf/access.log"}, []string{"access_log /var/log/sf/access.log;"}, []string{"\n    access_log off;"}}, // the health path logs nothing, whatever the setting
		{"traffic log", Options{Prefix: "/p", TrafficLog: "/p/logs/traffic.log"},
			[]string{"log_format sf_traffic '" + TrafficLogFormat + "';", "access_log /p/logs/traffic.log sf_traffic buffer=65536 flush=1s;"},
			[]string{"\n    access_log off;"}},
		{"both logs", Options{Prefix: "/p", AccessLog: "/var/log/sf/access.log", TrafficLog: "/p/logs/traffic.log"},
			[]string{"access_log /var/log/sf/access.log;", "access_log /p/logs/traffic.log sf_traffic"}, []string{"\n    access_log off;"}},
		{"workers", Options{Prefix: "/p", WorkerProcesses: "3"}, []string{"worker_processes 3;"}, nil},
		{"no uwsgi", Options{Prefix: "/p", caps: &binaryCaps{without: map[string]bool{"http_uwsgi_module": true}}},
			[]string{"scgi_temp_path /p/tmp/scgi;"}, []string{"uwsgi_temp_path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Render(testPlan(), tt.opts)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			conf := string(files[mainFile])
			for _, w := range tt.want {
				if !strings.Contains(conf, w) {
					t.Errorf("got nginx.conf without %q:\n%s", w, conf)
				}
			}
			for _, w := range tt.wantNone {
				if strings.Contains(conf, w) {
					t.Errorf("got nginx.conf with %q, want none:\n%s", w, conf)
				}
			}
		})
	}
}

func TestRenderListen(t *testing.T) {
	tests := []struct{ listen, directive, dial string }{
		{"127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:8080"},
		{":8080", "8080", "127.0.0.1:8080"},
		{"0.0.0.0:80", "0.0.0.0:80", "127.0.0.1:80"},
		{"[::1]:8080", "[::1]:8080", "[::1]:8080"},
		{"[::]:8080", "[::]:8080", "[::1]:8080"},
		{"localhost:81", "localhost:81", "localhost:81"},
	}
	for _, tt := range tests {
		plan := testPlan()
		plan.HTTPListen = tt.listen
		files, err := Render(plan, testOptions())
		if err != nil {
			t.Errorf("Render(listen %q): %v", tt.listen, err)
			continue
		}
		if want := "listen " + tt.directive + " default_server;"; !strings.Contains(string(files[mainFile]), want) {
			t.Errorf("listen %q: got nginx.conf without %q", tt.listen, want)
		}
		l, _ := parseListen(tt.listen)
		if got := l.dialAddr(); got != tt.dial {
			t.Errorf("listen %q: got probe address %q, want %q", tt.listen, got, tt.dial)
		}
	}
}

func TestRenderRejectsHostileValues(t *testing.T) {
	site := func(mod func(*Site)) func(*Plan, *Options) {
		return func(p *Plan, _ *Options) { mod(&p.Sites[0]) }
	}
	tests := []struct {
		name  string
		mod   func(*Plan, *Options)
		inErr string // the offending value as it must appear in the error
	}{
		{"semicolon domain", site(func(s *Site) { s.Domain = "a.test;evil" }), `"a.test;evil"`},
		{"brace domain", site(func(s *Site) { s.Domain = "a{.test" }), `"a{.test"`},
		{"close brace domain", site(func(s *Site) { s.Domain = "a}.test" }), `"a}.test"`},
		{"space domain", site(func(s *Site) { s.Domain = "a .test" }), `"a .test"`},
		{"newline domain", site(func(s *Site) { s.Domain = "a.test\nroot /" }), `"a.test\nroot /"`},
		{"dollar domain", site(func(s *Site) { s.Domain = "$host" }), `"$host"`},
		{"quote domain", site(func(s *Site) { s.Domain = `a".test` }), `"a\".test"`},
		{"single quote domain", site(func(s *Site) { s.Domain = "a'.test" }), `"a'.test"`},
		{"hash domain", site(func(s *Site) { s.Domain = "a#.test" }), `"a#.test"`},
		{"upper case domain", site(func(s *Site) { s.Domain = "A.test" }), `"A.test"`},
		{"leading hyphen label", site(func(s *Site) { s.Domain = "-a.test" }), `"-a.test"`},
		{"empty label", site(func(s *Site) { s.Domain = "a..test" }), `"a..test"`},
		{"wildcard domain", site(func(s *Site) { s.Domain = "*.a.test" }), `"*.a.test"`},
		{"empty domain", site(func(s *Site) { s.Domain = "" }), "hostname is empty"},
		{"too long domain", site(func(s *Site) { s.Domain = longName(0) + "x" }), "254 characters"},
		{"label too long", site(func(s *Site) { s.Domain = strings.Repeat("a", 64) + ".test" }), strings.Repeat("a", 64)},
		{"probe host", site(func(s *Site) { s.Domain = ProbeHost }), ProbeHost},
		{"map keyword default", site(func(s *Site) { s.Domain = "default" }), `"default"`},
		{"map keyword include", site(func(s *Site) { s.Domain = "include" }), `"include"`},
		{"map keyword alias", site(func(s *Site) { s.Aliases = []string{"hostnames"} }), `"hostnames"`},
		{"map keyword volatile", site(func(s *Site) { s.Domain = "volatile" }), `"volatile"`},
		{"hostile alias", site(func(s *Site) { s.Aliases = []string{"ok.test", "x.test}"} }), `"x.test}"`},
		{"relative root", site(func(s *Site) { s.Root = "srv/a" }), `"srv/a"`},
		{"unclean root", site(func(s *Site) { s.Root = "/srv/../etc" }), `"/srv/../etc"`},
		{"trailing slash root", site(func(s *Site) { s.Root = "/srv/a/" }), `"/srv/a/"`},
		{"space root", site(func(s *Site) { s.Root = "/srv/a b" }), `"/srv/a b"`},
		{"semicolon root", site(func(s *Site) { s.Root = "/srv/a;return" }), `"/srv/a;return"`},
		{"brace root", site(func(s *Site) { s.Root = "/srv/{a}" }), `"/srv/{a}"`},
		{"dollar root", site(func(s *Site) { s.Root = "/srv/$host" }), `"/srv/$host"`},
		{"quote root", site(func(s *Site) { s.Root = `/srv/a"` }), `"/srv/a\""`},
		{"hash root", site(func(s *Site) { s.Root = "/srv/#a" }), `"/srv/#a"`},
		{"backslash root", site(func(s *Site) { s.Root = `/srv/a\b` }), `"/srv/a\\b"`},
		{"newline root", site(func(s *Site) { s.Root = "/srv/a\n}" }), `"/srv/a\n}"`},
		{"hostile placeholder", func(p *Plan, _ *Options) { p.PlaceholderRoot = "/srv/p;x" }, `"/srv/p;x"`},
		{"no placeholder", func(p *Plan, _ *Options) { p.PlaceholderRoot, p.Sites[0].Root = "", "" }, "no placeholder root"},
		{"duplicate across sites", site(func(s *Site) { s.Aliases = []string{"a.test"} }), `"a.test"`},
		{"alias equals domain", site(func(s *Site) { s.Aliases = []string{s.Domain} }), `"b.test"`},
		{"listen without port", func(p *Plan, _ *Options) { p.HTTPListen = "127.0.0.1" }, `"127.0.0.1"`},
		{"listen port zero", func(p *Plan, _ *Options) { p.HTTPListen = "127.0.0.1:0" }, `"127.0.0.1:0"`},
		{"listen port too big", func(p *Plan, _ *Options) { p.HTTPListen = ":99999" }, `":99999"`},
		{"listen hostile host", func(p *Plan, _ *Options) { p.HTTPListen = "a;b:80" }, `"a;b:80"`},
		{"listen hostile port", func(p *Plan, _ *Options) { p.HTTPListen = "127.0.0.1:80;" }, `"127.0.0.1:80;"`},
		{"relative prefix", func(_ *Plan, o *Options) { o.Prefix = "nginx" }, `"nginx"`},
		{"hostile access log", func(_ *Plan, o *Options) { o.AccessLog = "/var/log/a.log main" }, `"/var/log/a.log main"`},
		{"hostile traffic log", func(_ *Plan, o *Options) { o.TrafficLog = "/p/t.log;error_log /x" }, `"/p/t.log;error_log /x"`},
		{"relative traffic log", func(_ *Plan, o *Options) { o.TrafficLog = "logs/t.log" }, `"logs/t.log" is not absolute`},
		{"hostile user", func(_ *Plan, o *Options) { o.User = "nobody;" }, `"nobody;"`},
		{"hostile workers", func(_ *Plan, o *Options) { o.WorkerProcesses = "auto;" }, `"auto;"`},
		{"relative extra file", func(_ *Plan, o *Options) { o.ExtraHTTPConfigFiles = []string{"x.conf"} }, `"x.conf"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, opts := testPlan(), testOptions()
			plan.Sites = plan.Sites[:2]
			plan.Sites[0].Aliases = nil // b.test
			tt.mod(&plan, &opts)
			files, err := Render(plan, opts)
			if err == nil {
				t.Fatalf("got no error, want one naming %s; nginx.conf:\n%s", tt.inErr, files[sitesFile])
			}
			if !strings.Contains(err.Error(), tt.inErr) {
				t.Errorf("got error %q, want it to name %s", err, tt.inErr)
			}
		})
	}
}

func TestRenderExtraFiles(t *testing.T) {
	dir := t.TempDir()
	extra := filepath.Join(dir, "my gzip.conf")
	if err := os.WriteFile(extra, []byte("gzip on;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.ExtraHTTPConfigFiles = []string{extra}
	g1, err := render(testPlan(), opts)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if got, want := string(g1.files["extra-00-my_gzip.conf"]), "gzip on;\n"; got != want {
		t.Errorf("extra file copy: got %q, want %q", got, want)
	}
	if want := "include extra-00-my_gzip.conf;"; !strings.Contains(string(g1.files[mainFile]), want) {
		t.Errorf("nginx.conf: missing %q", want)
	}
	if err := os.WriteFile(extra, []byte("gzip off;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g2, err := render(testPlan(), opts)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if g1.id == g2.id {
		t.Errorf("generation id did not change with the extra file's contents: %s", g1.id)
	}
	opts.ExtraHTTPConfigFiles = []string{filepath.Join(dir, "missing.conf")}
	if _, err := Render(testPlan(), opts); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("missing extra file: got error %v, want one naming missing.conf", err)
	}
}

func TestGenerationID(t *testing.T) {
	g, err := render(testPlan(), testOptions())
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if got := generationID(g.files); got != g.id {
		t.Errorf("generationID of the rendered files: got %s, want %s", got, g.id)
	}
	if !strings.Contains(string(g.files[probeFile]), `return 200 "`+g.id+`\n";`) {
		t.Errorf("probe.conf does not answer the id %s:\n%s", g.id, g.files[probeFile])
	}
	plan := testPlan()
	plan.Sites[2].Root = "/srv/c"
	g2, err := render(plan, testOptions())
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if g2.id != g.id {
		t.Errorf("a document root change gave a new generation %s: roots are links, they must not reload", g2.id)
	}
	plan.Sites[2].RedirectHTML = true
	g3, err := render(plan, testOptions())
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if g3.id == g.id {
		t.Errorf("different configs share generation id %s", g.id)
	}
}

func TestHashSizes(t *testing.T) {
	tests := []struct {
		name       string
		sites      []Site
		minBucket  int
		minMaxSize int
	}{
		{"empty", nil, 128, 2048},
		{"short names", []Site{{Domain: "a.test", RedirectHTML: true}}, 128, 2048},
		{"253 chars", []Site{{Domain: longName(1), RedirectHTML: true}}, 8 + 8*(8+256), 2048},
		{"20000 names", htmlRedirecting(bigPlan(":80", "/r", "/p", 10000, 0, 0).Sites), 128, 4 * 20000},
	}
	if got := hashSizesFor([]Site{{Domain: longName(1)}}); got != hashSizesFor(nil) {
		t.Errorf("a plain site changed the hash sizes to %+v: adding it would reload nginx", got)
	}
	for _, tt := range tests {
		got := hashSizesFor(tt.sites)
		if got.bucketSize < tt.minBucket || got.bucketSize%64 != 0 || got.maxSize < tt.minMaxSize {
			t.Errorf("%s: got %+v, want bucket >= %d (multiple of 64) and max >= %d", tt.name, got, tt.minBucket, tt.minMaxSize)
		}
	}
}

func htmlRedirecting(sites []Site) []Site {
	for i := range sites {
		sites[i].RedirectHTML = true
	}
	return sites
}

func TestParseVersionOutput(t *testing.T) {
	out := "nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/x --without-http_uwsgi_module --without-http_scgi_module\n"
	caps, err := parseVersionOutput(out)
	if err != nil {
		t.Fatalf("parseVersionOutput: %v", err)
	}
	if got, want := caps.version, [3]int{1, 22, 1}; got != want {
		t.Errorf("version: got %v, want %v", got, want)
	}
	if caps.has("http_uwsgi_module") || !caps.has("http_proxy_module") {
		t.Errorf("modules: got uwsgi=%v proxy=%v, want false true", caps.has("http_uwsgi_module"), caps.has("http_proxy_module"))
	}
	if !caps.supportsErrorLogFlag() {
		t.Errorf("1.22.1 supports -e: got false")
	}
	if _, err := parseVersionOutput("nginx version: nginx/1.22.1\n--without-http_map_module"); err == nil {
		t.Errorf("binary without map module: got no error")
	}
}

// ssl_certificate_cache is used where the binary has it (1.27.4 and
// later), and only there: older nginx refuses the directive.
func TestRenderCertificateCache(t *testing.T) {
	plan := testPlan()
	plan.HTTPSListen = "127.0.0.1:8443"
	plan.DHParams = "/srv/dhparams.pem"
	for version, want := range map[[3]int]bool{{1, 22, 1}: false, {1, 27, 3}: false, {1, 27, 4}: true, {1, 30, 6}: true, {2, 0, 0}: true} {
		opts := testOptions()
		opts.caps = &binaryCaps{version: version}
		files, err := Render(plan, opts)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		if got := strings.Contains(string(files[mainFile]), "ssl_certificate_cache max="); got != want {
			t.Errorf("nginx %v: ssl_certificate_cache %v, want %v", version, got, want)
		}
	}
}
