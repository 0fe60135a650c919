package webserver

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Rules are a site's own serving rules (from its bundle's _redirects and
// _headers). A site with rules is served by a server block of its own
// instead of the catch-all server's host maps.
type Rules struct {
	// Redirects apply in order; the first that matches wins. A rule that is
	// not Forced applies only when no file exists at the path.
	Redirects []Redirect
	// Headers add response headers to the paths they match; when several
	// rules set the same header for a path, the first wins.
	Headers []HeaderRule
}

// Redirect is one _redirects rule.
type Redirect struct {
	From Pattern
	// To is a path or an absolute http(s) URL; ":splat" and ":name" refer
	// to From's splat and placeholders.
	To string
	// Status is 301, 302, 303, 307, 308, 200 (rewrite) or 404 (serve To
	// with status 404).
	Status int
	Force  bool
}

// Pattern is a path pattern split into segments: literals (possibly
// percent-encoded), ":name" placeholders, and a final "*" splat.
type Pattern struct {
	Segments []string
}

// HeaderRule adds headers to the paths Path matches.
type HeaderRule struct {
	Path    Pattern
	Headers []Header
}

// Header is one response header.
type Header struct{ Name, Value string }

// Check reports whether the rules can be rendered; the error names the
// rule at fault. A caller can use it to keep a site with bad rules out of
// a plan instead of failing the whole plan.
func (r *Rules) Check() error {
	if r.Empty() {
		return nil
	}
	var maps strings.Builder
	_, err := renderRulesServer(Site{Domain: "check.invalid", Rules: r}, "/", 0, listenAddr{host: "127.0.0.1", port: 1}, nil, nil, nil, nil, &maps)
	return err
}

// Empty reports whether r has no rules.
func (r *Rules) Empty() bool { return r == nil || (len(r.Redirects) == 0 && len(r.Headers) == 0) }

// MaxRulesConfigBytes caps the nginx config one site's rules may generate
// (its server block and header maps), so that no bundle can make every
// reload slow or nginx's memory large: 1 MiB holds about 3,000 redirects.
const MaxRulesConfigBytes = 1 << 20

// defaultCacheControl is sent unless a _headers rule sets Cache-Control.
const defaultCacheControl = "public, max-age=0, must-revalidate"

var (
	placeholderRE  = regexp.MustCompile(`^:[a-z][a-z0-9_]{0,31}$`)
	literalRE      = regexp.MustCompile(`^[A-Za-z0-9._~:@+,=-]*$`)
	targetRE       = regexp.MustCompile(`^(https?://[a-z0-9.-]+(:[0-9]{1,5})?)?/[A-Za-z0-9._~%:/=&+,?#-]*$`)
	headerNameRE   = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	headerValueRE  = regexp.MustCompile("^[\x20-\x7e]+$")
	targetVarRE    = regexp.MustCompile(`:([a-z][a-z0-9_]*)`)
	allowedStatus  = map[int]bool{301: true, 302: true, 303: true, 307: true, 308: true, 200: true, 404: true}
	forbiddenValue = "\"\\${}"
)

// captureClass is what a placeholder or splat may match when the target
// uses it: RFC 3986 path characters that need no escaping in a header and
// cannot turn a path into another host (no "%", "\\", blanks, control or
// non-ASCII bytes). nginx matches the decoded URI, so a request whose
// capture holds anything else simply does not match the rule: no request
// byte reaches a Location header unescaped.
const captureClass = `[A-Za-z0-9._~!*+,=:@&()-]`

// splatClass is captureClass with "/", for the splat after its first
// character.
const splatClass = `[A-Za-z0-9._~!*+,=:@&()/-]`

// regex turns a pattern into an anchored PCRE. Placeholders and the splat
// that the target uses (capture) become named captures: the i-th
// placeholder is sf_p<i> (a short name whatever the placeholder is called:
// PCRE refuses group names over 32 characters) and the splat sf_splat,
// each restricted to captureClass; the splat never starts with "/", so
// "/:splat" cannot become "//host". Unused ones match anything without
// capturing. Literal segments are percent-decoded (nginx matches the
// decoded URI) and must then fit a conservative allowlist, so the regex can
// be placed in a double-quoted nginx string. It returns the placeholder
// names in order; a placeholder may appear only once.
func (p Pattern) regex(capture func(name string) bool) (string, []string, error) {
	var b strings.Builder
	var names []string
	b.WriteString("^")
	segs := p.Segments
	if len(segs) > 1 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1] // a trailing slash: "/?" below covers it
	}
	for i, seg := range segs {
		switch {
		case seg == "*" && i == len(segs)-1:
			if capture("splat") {
				b.WriteString("(?:/(?<sf_splat>" + captureClass + splatClass + "*)?)?")
			} else {
				b.WriteString("(?:/.*)?")
			}
			return b.String() + "$", names, nil
		case strings.HasPrefix(seg, ":"):
			if !placeholderRE.MatchString(seg) || seg == ":splat" {
				return "", nil, fmt.Errorf("placeholder %q is not allowed", seg)
			}
			if slices.Contains(names, seg[1:]) {
				return "", nil, fmt.Errorf("placeholder %q appears twice", seg)
			}
			if capture(seg[1:]) {
				b.WriteString("/(?<sf_p" + strconv.Itoa(len(names)) + ">" + captureClass + "+)")
			} else {
				b.WriteString("/[^/]+")
			}
			names = append(names, seg[1:])
		default:
			lit, err := url.PathUnescape(seg)
			if err != nil || !literalRE.MatchString(lit) {
				return "", nil, fmt.Errorf("path segment %q is not allowed", seg)
			}
			b.WriteString("/" + regexp.QuoteMeta(lit))
		}
	}
	if len(p.Segments) == 1 && p.Segments[0] == "" {
		return "^/$", names, nil
	}
	return b.String() + "/?$", names, nil
}

// noCaptures is a capture func for patterns whose matches are not used.
func noCaptures(string) bool { return false }

// targetVars returns the placeholder names (and "splat") that to uses.
func targetVars(to string) map[string]bool {
	used := map[string]bool{}
	for _, m := range targetVarRE.FindAllStringSubmatch(to, -1) {
		used[m[1]] = true
	}
	return used
}

// target turns To into an nginx string with ${sf_p<i>} and ${sf_splat}
// for the placeholders the pattern defines (names, in order).
func (r Redirect) target(names []string, splat bool) (string, error) {
	if !targetRE.MatchString(r.To) {
		return "", fmt.Errorf("target %q is not allowed", r.To)
	}
	var bad error
	out := targetVarRE.ReplaceAllStringFunc(r.To, func(m string) string {
		name := m[1:]
		if name == "splat" && splat {
			return "${sf_splat}"
		}
		if i := slices.Index(names, name); i >= 0 {
			return "${sf_p" + strconv.Itoa(i) + "}"
		}
		bad = fmt.Errorf("target %q uses :%s, which the pattern does not define", r.To, name)
		return m
	})
	return out, bad
}

// renderRulesServer renders the server block of a site with rules; index
// numbers the site for unique variable names. Header maps go to maps (http
// level), the server block to the returned string.
func renderRulesServer(site Site, root string, index int, listen listenAddr, https, acme, auth *listenAddr, previews *Previews, maps *strings.Builder) (string, error) {
	rules := site.Rules
	if rules == nil {
		rules = &Rules{} // protected, with no rules
	}
	var b strings.Builder
	mapsBefore := maps.Len()
	names := site.ownServerNames()
	fmt.Fprintf(&b, "\n# Site %s: its own server, for the rules of its bundle.\nserver {\n    listen %s;\n", site.Domain, listen.directive())
	if https != nil && hasAny(site.certNames(), names) {
		b.WriteString(sniListen(*https, "    "))
	}
	if site.Preview {
		b.WriteString(previewTLS(previews, https, "    "))
	}
	fmt.Fprintf(&b, "    server_name %s;\n", strings.Join(names, " "))
	fmt.Fprintf(&b, "    root %s;\n    index index.html;\n    set $sf_404_page /404.html;\n    error_page 404 $sf_404_page;\n", root)
	b.WriteString("    add_header Strict-Transport-Security $sf_hsts always;\n")
	if site.Preview {
		b.WriteString(strings.TrimPrefix(noIndex, "    "))
	}
	health, acmeBody := healthLocations("    "), acmeLocationBody(acme, "        ")
	if site.Protected {
		if auth == nil {
			return "", fmt.Errorf("protected, but the plan has no auth upstream")
		}
		b.WriteString(authBlock())
		health = strings.ReplaceAll(health, "{\n", "{\n        auth_request off;\n")
		acmeBody = "        auth_request off;\n" + acmeBody
	}
	b.WriteString(hiddenLocations("    ") + health)
	if err := renderHeaderMaps(&b, rules.Headers, index, maps); err != nil {
		return "", err
	}
	var forced, named strings.Builder
	for i, r := range rules.Redirects {
		if err := renderRedirect(&forced, &named, r); err != nil {
			return "", fmt.Errorf("redirect rule %d: %w", i+1, err)
		}
	}
	b.WriteString("    location ^~ /.well-known/acme-challenge/ {\n" + acmeBody + "    }\n")
	redirects := fmt.Sprintf("        if ($sf_to_https) {\n            return 301 https://$host%s$request_uri;\n        }\n", httpsPortSuffix(https)) +
		"        if ($sf_html_redirect) {\n            return 301 $sf_html_redirect;\n        }\n"
	b.WriteString("    location / {\n" + redirects + forced.String() + "        try_files $uri $uri.html $uri/ @sf_rules;\n    }\n")
	b.WriteString("    location @sf_rules {\n" + named.String() + "        return 404;\n    }\n}\n")
	if n := b.Len() + maps.Len() - mapsBefore; n > MaxRulesConfigBytes {
		return "", fmt.Errorf("the rules generate %d bytes of nginx config, more than %d: use fewer or shorter rules", n, MaxRulesConfigBytes)
	}
	return b.String(), nil
}

// renderRedirect writes a forced rule into forced, the start of the main
// location (tried in order, before the files), and any other rule into
// named, the location that runs when no file matched. A forced rewrite
// (200) serves its target from where it is ("break"): a new location
// search would apply the same forced rule to the target again, in a loop.
func renderRedirect(forced, named *strings.Builder, r Redirect) error {
	if !allowedStatus[r.Status] {
		return fmt.Errorf("status %d is not supported", r.Status)
	}
	used := targetVars(r.To)
	re, names, err := r.From.regex(func(name string) bool { return used[name] })
	if err != nil {
		return err
	}
	splat := len(r.From.Segments) > 0 && r.From.Segments[len(r.From.Segments)-1] == "*"
	to, err := r.target(names, splat)
	if err != nil {
		return err
	}
	if (r.Status == 200 || r.Status == 404) && !strings.HasPrefix(to, "/") {
		return fmt.Errorf("status %d needs a path target, not %q", r.Status, r.To)
	}
	if r.Force {
		fmt.Fprintf(forced, "        if ($uri ~ \"%s\") {\n            %s\n        }\n", re, redirectAction(r.Status, to, "break"))
		return nil
	}
	fmt.Fprintf(named, "        if ($uri ~ \"%s\") {\n            %s\n        }\n", re, redirectAction(r.Status, to, "last"))
	return nil
}

// redirectAction is the directive that applies a rule whose pattern
// matched; flag ends a rewrite (200).
func redirectAction(status int, to, flag string) string {
	switch status {
	case 200:
		return "rewrite ^ \"" + to + "\" " + flag + ";"
	case 404:
		return "set $sf_404_page \"" + to + "\"; return 404;"
	}
	return "return " + strconv.Itoa(status) + " \"" + to + "\";"
}

// renderHeaderMaps writes one map per header name (http level), keyed on
// the URI in rule order, and the add_header directives that use them.
// Cache-Control falls back to revalidation.
func renderHeaderMaps(server *strings.Builder, rules []HeaderRule, site int, maps *strings.Builder) error {
	type entry struct{ re, value string }
	byName := map[string][]entry{}
	display := map[string]string{"cache-control": "Cache-Control"}
	var order []string
	for i, rule := range rules {
		re, _, err := rule.Path.regex(noCaptures)
		if err != nil {
			return fmt.Errorf("header rule %d: %w", i+1, err)
		}
		for _, h := range rule.Headers {
			if !headerNameRE.MatchString(h.Name) || len(h.Value) > 1024 || !headerValueRE.MatchString(h.Value) || strings.ContainsAny(h.Value, forbiddenValue) {
				return fmt.Errorf("header rule %d: header %q is not allowed", i+1, h.Name)
			}
			key := strings.ToLower(h.Name)
			if _, ok := byName[key]; !ok {
				order = append(order, key)
				display[key] = h.Name
			}
			byName[key] = append(byName[key], entry{re, h.Value})
		}
	}
	if _, ok := byName["cache-control"]; !ok {
		order = append(order, "cache-control")
	}
	for j, name := range order {
		v := fmt.Sprintf("$sf_s%d_h%d", site, j)
		def := ""
		if name == "cache-control" {
			def = defaultCacheControl
		}
		fmt.Fprintf(maps, "    map $uri %s {\n        default \"%s\";\n", v, def)
		for _, e := range byName[name] {
			fmt.Fprintf(maps, "        \"~%s\" \"%s\";\n", e.re, e.value)
		}
		maps.WriteString("    }\n")
		fmt.Fprintf(server, "    add_header %s %s;\n", display[name], v)
	}
	return nil
}
