package webserver

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// UnknownHostBody is the exact body of the answer to a request whose Host is
// not the domain or alias of any site: status 404, Content-Type text/plain.
const UnknownHostBody = "sitefleet: no site is configured for this host\n"

// Names of the files of a generation.
const (
	mainFile  = "nginx.conf"
	mimeFile  = "mime.types"
	sitesFile = "sites.conf"
	probeFile = "probe.conf" // the only file that contains the generation id
	rulesFile = "rules.conf" // servers of sites with rules of their own
)

// workerConnections is the per-worker connection limit; workerNofile is the
// file descriptor limit requested for workers so the former fits.
const (
	workerConnections = 4096
	workerNofile      = 2*workerConnections + 1024
)

// Render validates plan and opts and returns the files of a generation
// (relative path -> contents): "nginx.conf", "mime.types", "sites.conf",
// "probe.conf" and one "extra-NN-<name>" per Options.ExtraHTTPConfigFiles
// entry. It has no side effects and does not block beyond reading those
// files; the output is deterministic for a given plan, options, extra file
// contents and process (the `user` directive is emitted only when running as
// root, `worker_rlimit_nofile` only when it can be honoured). Any value that
// could break out of an nginx directive is rejected with an error naming it.
// Options are defaulted as New does, except that without New the binary is
// assumed to have every temp-path module (see Server.Render).
func Render(plan Plan, opts Options) (map[string][]byte, error) {
	g, err := render(plan, opts)
	return g.files, err
}

// generation is one rendered config.
type generation struct {
	files  map[string][]byte
	id     string
	listen listenAddr
	extras string // digest of the operator's extra files as rendered
}

// render is Render that also returns the generation id and listen address.
func render(plan Plan, opts Options) (generation, error) {
	o, err := opts.resolve()
	if err != nil {
		return generation{}, fmt.Errorf("render: options: %w", err)
	}
	listen, sites, err := validatePlan(plan)
	if err != nil {
		return generation{}, fmt.Errorf("render: plan: %w", err)
	}
	var https *listenAddr
	if plan.HTTPSListen != "" {
		l, err := parseListen(plan.HTTPSListen)
		if err != nil {
			return generation{}, fmt.Errorf("render: plan: https: %w", err)
		}
		if err := validateTLS(plan, sites); err != nil {
			return generation{}, fmt.Errorf("render: plan: %w", err)
		}
		l.http2Directive = o.caps.supportsHTTP2Directive()
		https = &l
	} else if slices.ContainsFunc(sites, func(s Site) bool { return s.TLS != nil }) {
		sites = slices.Clone(sites) // it may be the caller's
		for i := range sites {
			sites[i].TLS = nil // no HTTPS on this node
		}
	}
	var acme *listenAddr
	if plan.ACMEChallengeUpstream != "" {
		l, err := parseListen(plan.ACMEChallengeUpstream)
		if err != nil {
			return generation{}, fmt.Errorf("render: plan: acme challenge upstream: %w", err)
		}
		acme = &l
	}
	files := map[string][]byte{
		mimeFile:  renderMimeTypes(),
		sitesFile: renderSites(sites),
		tlsFile:   renderTLSMaps(sites, https != nil, o.certsDir()),
	}
	var auth *listenAddr
	if plan.AuthUpstream != "" {
		l, err := parseListen(plan.AuthUpstream)
		if err != nil {
			return generation{}, fmt.Errorf("render: plan: auth upstream: %w", err)
		}
		auth = &l
	}
	rules, err := renderRules(sites, o.hostsDir(), listen, https, acme, auth, plan.Previews)
	if err != nil {
		return generation{}, fmt.Errorf("render: %w", err)
	}
	if rules != nil {
		files[rulesFile] = rules
	}
	extraNames, err := readExtras(o, files)
	if err != nil {
		return generation{}, fmt.Errorf("render: %w", err)
	}
	files[mainFile] = renderMain(o, mainParts{listen: listen, https: https, acme: acme, dhparams: plan.DHParams, resolvers: plan.Resolvers, sites: sites,
		hs: hashSizesFor(sites), extras: extraNames, hasRules: rules != nil, previews: plan.Previews})
	id := generationID(files)
	files[probeFile] = renderProbe(listen, id)
	return generation{files: files, id: id, listen: listen, extras: extrasDigest(files, extraNames)}, nil
}

// sortedSites returns sites sorted by Domain, each with sorted aliases:
// in itself when it is so already (the reconciler's plans are), else a
// sorted copy. The result must not be modified.
func sortedSites(in []Site) []Site {
	if slices.IsSortedFunc(in, byDomain) && !slices.ContainsFunc(in, func(s Site) bool { return !slices.IsSorted(s.Aliases) }) {
		return in // the reconciler's plans are in order: no copy
	}
	sites := slices.Clone(in)
	for i := range sites {
		if !slices.IsSorted(sites[i].Aliases) {
			sites[i].Aliases = slices.Sorted(slices.Values(sites[i].Aliases))
		}
	}
	slices.SortStableFunc(sites, byDomain) // of a repeated domain, the first listed stays first
	return sites
}

// readExtras copies the contents of the operator's extra files into files
// (from o.extras when it holds them) and returns their generation-relative
// names in order.
func readExtras(o Options, files map[string][]byte) ([]string, error) {
	names := make([]string, 0, len(o.ExtraHTTPConfigFiles))
	for i, p := range o.ExtraHTTPConfigFiles {
		data, ok := o.extras[p]
		if !ok {
			var err error
			if data, err = os.ReadFile(p); err != nil {
				return nil, fmt.Errorf("read extra http config: %w", err)
			}
		}
		name := fmt.Sprintf("extra-%02d-%s", i, sanitizeFileName(filepath.Base(p)))
		files[name] = data
		names = append(names, name)
	}
	return names, nil
}

// withExtrasRead returns o with the operator's extra files read, for an
// Apply: an operator editing a file while Apply tests configs must not
// make a site look refused that the file refused.
func (o Options) withExtrasRead() (Options, error) {
	o.extras = make(map[string][]byte, len(o.ExtraHTTPConfigFiles))
	for _, p := range o.ExtraHTTPConfigFiles {
		data, err := os.ReadFile(p)
		if err != nil {
			return o, fmt.Errorf("render: read extra http config: %w", err)
		}
		o.extras[p] = data
	}
	return o, nil
}

// extrasDigest hashes the contents of the extra files of a generation.
func extrasDigest(files map[string][]byte, names []string) string {
	h := sha256.New()
	for _, n := range names {
		h.Write(files[n])
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sanitizeFileName keeps [A-Za-z0-9._-] and replaces anything else with '_'.
func sanitizeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '_' || r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// renderSites renders the host maps of the options nginx must know: which
// aliases redirect, and which hosts redirect /page.html. Document roots are
// not in the config (see hostLinks). Names were validated, so they can be
// quoted without escaping.
func renderSites(sites []Site) []byte {
	var redirects, stripHTML strings.Builder
	redirects.WriteString("# Generated by sitefleet: redirecting alias -> primary domain.\n" +
		"map $host $sf_redirect {\n    hostnames;\n    default \"\";\n")
	stripHTML.WriteString("# Generated by sitefleet: hosts whose /page.html redirects to /page.\n" +
		"map $host $sf_strip_html {\n    hostnames;\n    default \"\";\n")
	for _, s := range sites {
		if s.RedirectHTML {
			for _, name := range s.ownServerNames() {
				writeMapEntry(&stripHTML, name, "1")
			}
		}
		if s.RedirectAliases {
			for _, alias := range s.Aliases {
				writeMapEntry(&redirects, alias, s.Domain)
			}
		}
	}
	redirects.WriteString("}\n\n")
	stripHTML.WriteString("}\n")
	return []byte(redirects.String() + stripHTML.String())
}

func writeMapEntry(b *strings.Builder, key, value string) {
	b.WriteString("    \"")
	b.WriteString(key)
	b.WriteString("\" \"")
	b.WriteString(value)
	b.WriteString("\";\n")
}

// hashSizes are the map_hash_* values for a plan.
type hashSizes struct{ maxSize, bucketSize int }

// hashSizesFor sizes nginx's map and server-name hashes so that every name
// fits without "could not build optimal map_hash" warnings. nginx stores a
// name in 8 + align(len+2, 8) bytes; a bucket must hold its chain plus a
// pointer. A load factor of 1/4 keeps chains short and the bucket fits 8 of
// the longest names, so nginx finds a layout on its first attempts. Only
// the names of sites that appear in a hash count (plain sites are served
// by their link alone), and both sizes are rounded up to a power of two, so
// adding or removing a plain site never changes the config.
func hashSizesFor(sites []Site) hashSizes {
	names, longest := 0, 0
	for _, s := range sites {
		if s.plain() {
			continue
		}
		names += 1 + len(s.Aliases)
		longest = max(longest, len(s.Domain))
		for _, a := range s.Aliases {
			longest = max(longest, len(a))
		}
	}
	elt := 8 + (longest+2+7)/8*8
	bucket := (8 + 8*elt + 63) / 64 * 64
	return hashSizes{maxSize: max(2048, nextPow2(4*names)), bucketSize: max(128, nextPow2(bucket))}
}

// plain reports whether nginx's config does not name s at all: it has no
// redirecting aliases, no rules, no TLS and no /page.html redirect.
func (s Site) plain() bool {
	return (!s.RedirectAliases || len(s.Aliases) == 0) && !s.RedirectHTML && !s.ownServer() && s.TLS == nil
}

func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// mainParts is what nginx.conf is made of besides the options.
type mainParts struct {
	listen    listenAddr
	https     *listenAddr // nil: no HTTPS
	acme      *listenAddr // nil: ACME challenges are not passed on
	dhparams  string
	resolvers []string
	sites     []Site
	hs        hashSizes
	extras    []string
	hasRules  bool
	previews  *Previews
}

// renderMain renders nginx.conf.
func renderMain(o Options, m mainParts) []byte {
	var b strings.Builder
	b.WriteString("# Generated by sitefleet; do not edit. The generation id is in " + probeFile + ".\n")
	if os.Geteuid() == 0 {
		b.WriteString("user " + o.User + ";\n")
	}
	if o.caps != nil && o.caps.brotliStatic != "" {
		b.WriteString("load_module " + o.caps.brotliStatic + ";\n")
	}
	b.WriteString("worker_processes " + o.WorkerProcesses + ";\n")
	if canRaiseNofile() {
		b.WriteString("worker_rlimit_nofile " + strconv.Itoa(workerNofile) + ";\n")
	}
	b.WriteString("pid " + o.pidFile() + ";\n")
	if o.Manage {
		b.WriteString("error_log stderr warn;\ndaemon off;\n")
	} else {
		b.WriteString("error_log " + filepath.Join(o.Prefix, "logs", "error.log") + " warn;\n")
	}
	b.WriteString("\nevents {\n    worker_connections " + strconv.Itoa(workerConnections) + ";\n}\n\n")
	b.WriteString("http {\n")
	writeHTTPSettings(&b, o, m.hs)
	if m.https != nil {
		writeTLSSettings(&b, m.dhparams, m.resolvers)
		if o.caps.supportsCertificateCache() {
			b.WriteString(certificateCache)
		}
		if m.https.http2Directive {
			b.WriteString("    http2 on;\n")
		}
	}
	b.WriteString("\n    include " + sitesFile + ";\n    include " + tlsFile + ";\n\n")
	b.WriteString(requestMaps)
	b.WriteString(httpsMaps)
	for _, e := range m.extras {
		b.WriteString("\n    # Operator configuration, copied into this generation.\n    include " + e + ";\n")
	}
	b.WriteString(serverBody(catchAllServer, o, m.listen, m.https, m.acme))
	if names := specialNames(m.sites); len(names) > 0 {
		b.WriteString(serverBody(specialServer(names), o, m.listen, m.https, m.acme))
	}
	if m.previews != nil {
		b.WriteString(serverBody(previewServer(m.previews, m.https), o, m.listen, m.https, m.acme))
	}
	if m.https != nil {
		b.WriteString(serverBody(renderHTTPSServers(*m.https, catchAllTLSNames(m.sites)), o, m.listen, m.https, m.acme))
		b.WriteString(serverBody(renderStapledServers(m.sites, *m.https), o, m.listen, m.https, m.acme))
	}
	b.WriteString("\n    include " + probeFile + ";\n")
	if m.hasRules {
		b.WriteString("    include " + rulesFile + ";\n")
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

// canRaiseNofile reports whether nginx workers may raise RLIMIT_NOFILE to
// workerNofile (root always may; others up to the hard limit).
func canRaiseNofile() bool {
	var lim syscall.Rlimit
	if os.Geteuid() == 0 {
		return true
	}
	return syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Max >= workerNofile
}

// TrafficLogFormat is the traffic log's line: the request's end (seconds
// since the epoch, with milliseconds), the host as nginx validated it
// (lower case, no port; "-" when there is none), the status, the bytes
// sent and the request's duration in seconds. Fields are separated by
// one space; none can hold one.
const TrafficLogFormat = "$msec $host $status $bytes_sent $request_time"

// TrafficLogBuffer is the traffic log's buffer: a worker writes it out
// when full, or after a second.
const TrafficLogBuffer = 64 << 10

// writeHTTPSettings writes the http{}-level directives.
func writeHTTPSettings(b *strings.Builder, o Options, hs hashSizes) {
	b.WriteString("    include " + mimeFile + ";\n" +
		"    default_type application/octet-stream;\n" +
		"    # A missing file is a 404, not an error worth a log line.\n" +
		"    log_not_found off;\n" +
		"    server_tokens off;\n" +
		"    sendfile on;\n" +
		"    tcp_nopush on;\n" +
		"    absolute_redirect off;\n" +
		"    gzip_static on;\n")
	if o.caps != nil && o.caps.brotliStatic != "" {
		b.WriteString("    brotli_static on;\n")
	}
	if o.AccessLog == "" && o.TrafficLog == "" {
		b.WriteString("    access_log off;\n")
	}
	if o.AccessLog != "" {
		b.WriteString("    access_log " + o.AccessLog + ";\n")
	}
	if o.TrafficLog != "" {
		b.WriteString("    log_format sf_traffic '" + TrafficLogFormat + "';\n" +
			"    access_log " + o.TrafficLog + " sf_traffic buffer=" + strconv.Itoa(TrafficLogBuffer) + " flush=1s;\n")
	}
	tmp := filepath.Join(o.Prefix, "tmp")
	b.WriteString("    client_body_temp_path " + filepath.Join(tmp, "client_body") + ";\n")
	for _, m := range []string{"proxy", "fastcgi", "uwsgi", "scgi"} {
		if o.caps.has("http_" + m + "_module") {
			b.WriteString("    " + m + "_temp_path " + filepath.Join(tmp, m) + ";\n")
		}
	}
	fmt.Fprintf(b, "    server_names_hash_max_size %d;\n    server_names_hash_bucket_size %d;\n", hs.maxSize, hs.bucketSize)
	fmt.Fprintf(b, ""+
		"    map_hash_max_size %d;\n    map_hash_bucket_size %d;\n", hs.maxSize, hs.bucketSize)
}

// requestMaps derive the per-request variables the servers use. Each is
// a hash lookup for a request that needs no redirect: the regex maps are
// only evaluated (lazily, as map values) for hosts that ask for them.
const requestMaps = `    # For hosts that ask for it ($sf_strip_html), the clean URL that
    # /page.html and /dir/index.html redirect to. Keyed on the request as
    # the client sent it, so internal redirects (index, try_files) never
    # trigger it.
    map $sf_strip_html $sf_html_redirect {
        default "";
        "1" $sf_html_target;
    }
    # The path must start with one "/" followed by neither "/" nor "\", and
    # path and query hold only characters that need no escaping, so the
    # Location stays on the site and carries nothing the client chose
    # unescaped; any other request is served without a redirect.
    map $request_uri $sf_html_target {
        default "";
        "~^(?<sf_hp>/(?:[A-Za-z0-9._~!*+,=:@&()%-][A-Za-z0-9._~!*+,=:@&()%/-]*/)?)index\.html(?<sf_hq>\?[A-Za-z0-9._~!*+,=:@&()%/?-]*)?$" "$sf_hp$sf_hq";
        "~^(?<sf_hp>/[A-Za-z0-9._~!*+,=:@&()%-][A-Za-z0-9._~!*+,=:@&()%/-]*)\.html(?<sf_hq>\?[A-Za-z0-9._~!*+,=:@&()%/?-]*)?$" "$sf_hp$sf_hq";
    }
    # ":<port>" when the client's Host header carried one; kept by redirects.
    map $http_host $sf_port {
        default "";
        "~:(?<sf_port_number>[0-9]+)$" ":$sf_port_number";
    }
`

// serverBody fills in the placeholders of a server template.
func serverBody(tmpl string, o Options, listen listenAddr, https *listenAddr, acme *listenAddr) string {
	return strings.NewReplacer("@LISTEN@", listen.directive(), "@HTTPSPORT@", httpsPortSuffix(https),
		"@ACME@", acmeLocationBody(acme, "            "), "@HOSTS@", o.hostsDir(), "@HSTS@", "").Replace(tmpl)
}

// acmeLocationBody is the body of the ACME challenge location, each line
// at indent. It passes ACME HTTP-01 challenges to the node, which answers
// them from etcd, whichever node the CA reaches; without an upstream they
// get 404.
func acmeLocationBody(acme *listenAddr, indent string) string {
	if acme == nil { // with a body: no error_page, so no HTTPS redirect either
		return indent + "return 404 \"no ACME challenges are answered here\\n\";\n"
	}
	return indent + "proxy_pass http://" + acme.dialAddr() + ";\n" +
		indent + "proxy_set_header Host $host;\n" +
		indent + "proxy_connect_timeout 5s;\n" +
		indent + "proxy_read_timeout 30s;\n"
}

// hiddenLocations keep a bundle's manifest files and dotfiles (other than
// /.well-known/) from being served: they configure the site, they are not
// its content. They answer 404 like any missing file.
func hiddenLocations(indent string) string {
	return indent + "location = /_redirects {\n" + indent + "    return 404;\n" + indent + "}\n" +
		indent + "location = /_headers {\n" + indent + "    return 404;\n" + indent + "}\n" +
		indent + "location ~ \"/\\\\.(?!well-known/)\" {\n" + indent + "    return 404;\n" + indent + "}\n"
}

// HealthPath is the path that answers, on every host and port nginx
// serves, whether the node is ready for traffic: 200 "ready" while it
// is, 503 "not ready" otherwise (before its first state is served, and
// while it drains). It needs no token: it is for load balancers and
// traffic managers that probe the serving port.
const HealthPath = "/.well-known/sitefleet/ready"

// healthDir is where the ready file is kept, relative to the prefix (as
// nginx resolves a relative root).
const healthDir = "health"

// healthLocations answer HealthPath from the ready file that SetReady
// writes and removes. The exact match wins over every other location.
func healthLocations(indent string) string {
	return indent + "location = " + HealthPath + " {\n" +
		indent + "    access_log off;\n" +
		indent + "    root " + healthDir + ";\n" +
		indent + "    types { }\n" +
		indent + "    default_type text/plain;\n" +
		indent + "    add_header Cache-Control \"no-store\" always;\n" +
		indent + "    try_files /ready @sf_not_ready;\n" +
		indent + "}\n" +
		indent + "location @sf_not_ready {\n" +
		indent + "    access_log off;\n" +
		indent + "    types { }\n" +
		indent + "    default_type text/plain;\n" +
		indent + "    add_header Cache-Control \"no-store\" always;\n" +
		indent + "    return 503 \"not ready\\n\";\n" +
		indent + "}\n"
}

// catchAllServer serves every site over HTTP from <Prefix>/hosts/$host,
// except the hosts that may redirect, which specialServer names.
var catchAllServer = `
    # Every site is served by this one server; see hosts.go.
    server {
        listen @LISTEN@ default_server;
        server_name _;
` + catchAllBody(false)

// specialServer serves over HTTP the hosts of names that may redirect (to
// their primary domain, to HTTPS, or from /page.html): apart from the
// redirects, it is the catch-all. Keeping them out of the catch-all spares
// every other request the tests.
func specialServer(names []string) string {
	var b strings.Builder
	b.WriteString("\n    # Hosts that may redirect; see sites.conf and tls.conf.\n    server {\n        listen @LISTEN@;\n        server_name")
	for _, n := range names {
		b.WriteString("\n            " + n)
	}
	b.WriteString(";\n")
	b.WriteString(catchAllBody(true))
	return b.String()
}

// specialNames are the names specialServer serves, sorted: redirecting
// aliases, and the names of sites without rules of their own (those test
// their redirects in their own server) that redirect /page.html or plain
// HTTP.
func specialNames(sites []Site) []string {
	var out []string
	for _, s := range sites {
		if s.RedirectAliases {
			out = append(out, s.Aliases...)
		}
		if s.ownServer() {
			continue
		}
		if s.RedirectHTML {
			out = append(out, s.ownServerNames()...)
		}
		if s.TLS != nil && s.TLS.RedirectHTTP {
			out = append(out, s.certNames()...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// redirectTests are the tests of the servers whose hosts may redirect.
const redirectTests = `            if ($sf_to_https) {
                return 301 https://$host@HTTPSPORT@$request_uri;
            }
            if ($sf_redirect) {
                return 301 $scheme://$sf_redirect$sf_port$request_uri;
            }
            if ($sf_html_redirect) {
                return 301 $sf_html_redirect;
            }
`

// catchAllBody is the rest of the catch-all servers, HTTP and HTTPS, with
// the redirect tests or without.
//
// The common request (a plain host, a file that exists) costs what it
// costs bare nginx: no test, no try_files stat, the static handler. The
// redirects are tested in the main location, so ACME challenges and the
// hidden files are never redirected. A file the static handler does not
// find goes to @sf_clean for clean URLs (/about -> about.html, /docs/ ->
// its index), then to @sf_missing: a host without a link in
// <Prefix>/hosts gets UnknownHostBody (418 is only an internal hop so
// that the answer has its own Content-Type), a known one the site's
// /404.html, or a plain 404 if it has none.
func catchAllBody(redirects bool) string {
	tests := ""
	if redirects {
		tests = redirectTests
	}
	return `        error_page 418 = @sf_unknown_host;
        root @HOSTS@/$host;
        index index.html;
        # A site's own /404.html answers its missing pages (status 404).
        error_page 404 /404.html;
        recursive_error_pages on;
        # Revalidate by default: a bundle's _headers can mark hashed assets
        # immutable.
        add_header Cache-Control "public, max-age=0, must-revalidate";
@HSTS@        location / {
` + tests + `            error_page 404 = @sf_clean;
        }
        location @sf_clean {
            # Clean URLs: /about serves about.html.
            try_files $uri.html $uri/ @sf_missing;
        }
` + hiddenLocations("        ") + healthLocations("        ") + `        location ^~ /.well-known/acme-challenge/ {
@ACME@        }
        location @sf_missing {
            types { }
            default_type text/plain;
            if (!-d $document_root) {
                return 418;
            }
            if ($uri = /404.html) {
                return 404 "404 page not found\n";
            }
            return 404;
        }
        location @sf_unknown_host {
            types { }
            default_type text/plain;
            return 404 "sitefleet: no site is configured for this host\n";
        }
    }
`
}

// renderProbe renders the probe server that answers the generation id.
func renderProbe(listen listenAddr, id string) []byte {
	return []byte("# Generated by sitefleet: reports the generation nginx is serving.\n" +
		"server {\n" +
		"    listen " + listen.directive() + ";\n" +
		"    server_name " + ProbeHost + ";\n" +
		"    access_log off;\n" +
		"    default_type text/plain;\n" +
		"    location = /generation {\n" +
		"        return 200 \"" + id + "\\n\";\n" +
		"    }\n" +
		"    location / {\n" +
		"        return 404;\n" +
		"    }\n" +
		"}\n")
}

// generationID hashes every file except probeFile (which embeds the id):
// sha256 over (name length, name, contents length, contents) in name order, first 16 bytes in hex.
func generationID(files map[string][]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if name == probeFile {
			continue
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(name)))
		h.Write(n[:])
		h.Write([]byte(name))
		binary.BigEndian.PutUint64(n[:], uint64(len(files[name])))
		h.Write(n[:])
		h.Write(files[name])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// renderRules renders the servers of the sites that have rules of their
// own, and the header maps they use; nil when no site has rules.
func renderRules(sites []Site, hosts string, listen listenAddr, https, acme, auth *listenAddr, previews *Previews) ([]byte, error) {
	var maps, servers strings.Builder
	n := 0
	for _, s := range sites {
		if !s.ownServer() {
			continue
		}
		srv, err := renderRulesServer(s, filepath.Join(hosts, s.Domain), n, listen, https, acme, auth, previews, &maps)
		if err != nil {
			return nil, fmt.Errorf("site %s: %w", s.Domain, err)
		}
		servers.WriteString(srv)
		n++
	}
	if n == 0 {
		return nil, nil
	}
	upstream := ""
	if auth != nil && slices.ContainsFunc(sites, func(s Site) bool { return s.Protected }) {
		upstream = authUpstream(*auth)
	}
	return []byte("# Generated by sitefleet: sites with rules of their own.\n" + upstream + maps.String() + servers.String()), nil
}
