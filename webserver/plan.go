package webserver

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
)

// ProbeHost is the Host header of the internal probe server. A request for
// http://<HTTPListen>/generation with this Host is answered with the id of the
// generation nginx is currently serving. It is reserved: no site may use it.
const ProbeHost = "sitefleet-probe.invalid"

// maxNameLen is the longest hostname accepted (RFC 1123 without the trailing dot).
const maxNameLen = 253

// Plan is everything nginx must serve. All values are already validated
// upstream, but Render re-checks them (defence in depth) and returns an error
// for any value that could break out of an nginx directive.
type Plan struct {
	// HTTPListen is the host:port nginx listens on for HTTP, e.g.
	// "127.0.0.1:8080", ":8080" (all IPv4 addresses) or "[::1]:8080".
	HTTPListen string
	// Sites may be given in any order; Render sorts them by Domain.
	// Apply keeps the list (and what its sites point to) while the plan
	// is live, without copying it: the caller must not change either
	// afterwards, and builds the next plan's list anew.
	Sites []Site
	// PlaceholderRoot is an absolute directory containing index.html, served
	// for sites whose Root is "". Required only when such a site exists.
	PlaceholderRoot string
	// HTTPSListen is the host:port nginx listens on for HTTPS; "" serves
	// no HTTPS (and sites' TLS settings are ignored).
	HTTPSListen string
	// DHParams is the absolute path of the DH parameters (PEM) for the
	// DHE cipher suites; required with HTTPSListen.
	DHParams string
	// Resolvers are the DNS servers (IP addresses) nginx asks for the
	// OCSP responders of stapled certificates.
	Resolvers []string
	// ACMEChallengeUpstream is the host:port (the node's API) that
	// /.well-known/acme-challenge/ requests are passed to, on every site;
	// "" answers them with 404.
	ACMEChallengeUpstream string
	// Previews, when set, serves the sites marked Preview.
	Previews *Previews
	// AuthUpstream is the host:port (the node) that protected sites ask,
	// for each request, whether it may be answered (auth_request to
	// AuthPath); required when a site is Protected.
	AuthUpstream string
}

// SiteTLS is how a site is served over HTTPS.
type SiteTLS struct {
	// Certificates serve the names they list. A name of the site that no
	// certificate lists is not served over HTTPS (its handshake fails).
	Certificates []CertFiles
	// RedirectHTTP answers plain HTTP with a 301 to HTTPS, except for
	// ACME HTTP-01 challenges.
	RedirectHTTP bool
	// HSTS is the Strict-Transport-Security value sent over HTTPS;
	// "" sends none. It must match max-age=N[; includeSubDomains][; preload].
	HSTS string
}

// CertFiles is a certificate chain and its key, as PEM files.
type CertFiles struct {
	Names []string
	// Chain and Key are absolute paths.
	Chain, Key string
	// Staple serves the certificate with OCSP stapling: its chain names an
	// OCSP responder and holds the issuer. Such a certificate gets a
	// server block of its own (nginx staples only certificates it loads
	// with the config); it is ignored for sites with rules of their own.
	Staple bool
}

// Site is one static site.
type Site struct {
	// Domain is a lower-case ASCII hostname (RFC 1123, punycode):
	// [a-z0-9.-], at most 253 characters.
	Domain string
	// Aliases follow the same rules as Domain.
	Aliases []string
	// RedirectAliases makes aliases answer 301 to the primary domain;
	// when false, aliases serve the same content as Domain.
	RedirectAliases bool
	// Root is the absolute directory to serve; "" means Plan.PlaceholderRoot.
	Root string
	// RedirectHTML answers /page.html with a 301 to /page (and
	// /dir/index.html with one to /dir/); /page serves page.html either way.
	RedirectHTML bool
	// Rules, when not empty, give the site a server block of its own.
	Rules *Rules
	// TLS, when set, serves the site over HTTPS too.
	TLS *SiteTLS
	// Preview marks a deploy preview: Domain is one label under
	// Plan.Previews.Domain, and it answers with X-Robots-Tag: noindex.
	Preview bool
	// Protected asks Plan.AuthUpstream about every request to the site
	// (see AuthPath); it gets a server of its own. Who may enter, and
	// where, is the upstream's business, so changing it reloads nothing.
	Protected bool
}

// ReservedName reports whether name is one of the words nginx reads as a
// parameter or directive inside a map block (default, hostnames, include,
// volatile) even when quoted: as a site name it would make every config
// fail. Such single-label names are refused upstream as well.
func ReservedName(name string) bool {
	switch name {
	case "default", "hostnames", "include", "volatile":
		return true
	}
	return false
}

// validateName checks a hostname against
// ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$
// with a total length of at most 253. It is hand-written because it runs for
// every name of every Render and must stay cheap at 20,000+ names.
func validateName(name string) error {
	if name == "" {
		return fmt.Errorf("hostname is empty")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("hostname %.40q... is %d characters long, more than %d", name, len(name), maxNameLen)
	}
	if name == ProbeHost {
		return fmt.Errorf("hostname %q is reserved for the probe server", name)
	}
	if ReservedName(name) {
		return fmt.Errorf("hostname %q is a keyword of nginx's map block and cannot name a site", name)
	}
	labelStart := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			if !isNameChar(name[i]) {
				return fmt.Errorf("hostname %q: invalid character %q (allowed: a-z 0-9 . -)", name, name[i])
			}
			continue
		}
		if err := checkLabel(name[labelStart:i]); err != nil {
			return fmt.Errorf("hostname %q: %w", name, err)
		}
		labelStart = i + 1
	}
	return nil
}

func isNameChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
}

func checkLabel(label string) error {
	switch {
	case label == "":
		return fmt.Errorf("empty label")
	case len(label) > 63:
		return fmt.Errorf("label %q is longer than 63 characters", label)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("label %q starts or ends with '-'", label)
	}
	return nil
}

// validatePath checks that p is absolute, clean and made only of
// [A-Za-z0-9._/+@=,-], so it can be embedded in nginx.conf without quoting
// problems (no spaces, quotes, ;{}$#\ or control characters).
func validatePath(p string) error {
	if p == "" {
		return fmt.Errorf("path is empty")
	}
	for i := 0; i < len(p); i++ {
		if !isPathChar(p[i]) {
			return fmt.Errorf("path %q: invalid character %q (allowed: A-Z a-z 0-9 . _ / + @ = , -)", p, p[i])
		}
	}
	if !filepath.IsAbs(p) {
		return fmt.Errorf("path %q is not absolute", p)
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("path %q is not clean (want %q)", p, filepath.Clean(p))
	}
	return nil
}

func isPathChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '.', '_', '/', '+', '@', '=', ',', '-':
		return true
	}
	return false
}

// listenAddr is a validated Plan.HTTPListen.
type listenAddr struct {
	host string // "" for all IPv4 addresses; IPv6 without brackets
	port int
	// http2Directive: the binary turns HTTP/2 on with `http2 on;` (nginx
	// 1.25.1+, which warns about the listen parameter), not `listen ...
	// http2`.
	http2Directive bool
}

// tlsParams are the listen parameters of an HTTPS listener.
func (l listenAddr) tlsParams() string {
	if l.http2Directive {
		return "ssl"
	}
	return "ssl http2"
}

// parseListen validates HTTPListen: host must be empty, an IP address or a
// hostname; port must be 1..65535.
func parseListen(s string) (listenAddr, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return listenAddr{}, fmt.Errorf("listen address %q: %w", s, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != portStr {
		return listenAddr{}, fmt.Errorf("listen address %q: port %q is not a number in 1..65535", s, portStr)
	}
	if host != "" && net.ParseIP(host) == nil {
		if err := validateName(host); err != nil {
			return listenAddr{}, fmt.Errorf("listen address %q: host is neither an IP address nor a valid hostname: %w", s, err)
		}
	}
	return listenAddr{host: host, port: port}, nil
}

// directive is the argument of nginx's listen directive.
func (l listenAddr) directive() string {
	p := strconv.Itoa(l.port)
	switch {
	case l.host == "":
		return p
	case net.ParseIP(l.host) != nil && net.ParseIP(l.host).To4() == nil:
		return "[" + l.host + "]:" + p
	default:
		return l.host + ":" + p
	}
}

// dialAddr is the address the probe connects to: wildcard listen addresses
// are reached via loopback.
func (l listenAddr) dialAddr() string {
	host := l.host
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, strconv.Itoa(l.port))
}

// validateGlobal checks the values of plan that are not a site's: a fault
// there fails the whole plan.
func validateGlobal(plan Plan) error {
	if _, err := parseListen(plan.HTTPListen); err != nil {
		return err
	}
	if plan.PlaceholderRoot != "" {
		if err := validatePath(plan.PlaceholderRoot); err != nil {
			return fmt.Errorf("placeholder root: %w", err)
		}
	}
	if plan.HTTPSListen != "" {
		if _, err := parseListen(plan.HTTPSListen); err != nil {
			return fmt.Errorf("https: %w", err)
		}
		if err := validateTLS(plan, nil); err != nil {
			return err
		}
	}
	if plan.ACMEChallengeUpstream != "" {
		if _, err := parseListen(plan.ACMEChallengeUpstream); err != nil {
			return fmt.Errorf("acme challenge upstream: %w", err)
		}
	}
	return nil
}

// validatePlan checks every value of plan and returns the sites sorted by
// Domain. It does not modify plan.
func validatePlan(plan Plan) (listenAddr, []Site, error) {
	listen, err := parseListen(plan.HTTPListen)
	if err != nil {
		return listenAddr{}, nil, err
	}
	if plan.PlaceholderRoot != "" {
		if err := validatePath(plan.PlaceholderRoot); err != nil {
			return listenAddr{}, nil, fmt.Errorf("placeholder root: %w", err)
		}
	}
	if err := validatePreviews(plan.Previews, plan.HTTPSListen != ""); err != nil {
		return listenAddr{}, nil, err
	}
	seen := make(map[string]string, len(plan.Sites)*2)
	for i, site := range plan.Sites {
		if err := validateSite(site, plan.PlaceholderRoot, seen); err != nil {
			return listenAddr{}, nil, fmt.Errorf("site %d (%.60q): %w", i, site.Domain, err)
		}
		if err := checkPreview(site, plan.Previews); err != nil {
			return listenAddr{}, nil, fmt.Errorf("site %d: %w", i, err)
		}
	}
	sites := sortedSites(plan.Sites)
	return listen, sites, nil
}

// validateSite checks one site and records its names in seen (name -> owning
// domain) to detect duplicates across sites.
func validateSite(site Site, placeholder string, seen map[string]string) error {
	if err := validateName(site.Domain); err != nil {
		return fmt.Errorf("domain: %w", err)
	}
	for _, alias := range site.Aliases {
		if err := validateName(alias); err != nil {
			return fmt.Errorf("alias: %w", err)
		}
	}
	if site.Root == "" && placeholder == "" {
		return fmt.Errorf("root is empty and the plan has no placeholder root")
	}
	if site.Root != "" {
		if err := validatePath(site.Root); err != nil {
			return fmt.Errorf("root: %w", err)
		}
	}
	for _, name := range append([]string{site.Domain}, site.Aliases...) {
		if owner, dup := seen[name]; dup {
			return fmt.Errorf("hostname %q is already used by site %q", name, owner)
		}
		seen[name] = site.Domain
	}
	return nil
}
